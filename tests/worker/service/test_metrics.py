"""``worker run --metrics-port``: a running worker serves /metrics on 127.0.0.1 with its counters, stage
histograms, gauges and info metrics; a real Prometheus server (Debian's package) scrapes it every second
and answers a query about it through its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO
from tests.support.planted import plant_stream
from tests.support.receivers import free_port, webhook_receiver
from tests.support.workers import spawn, wait_for, worker_cmd

N_IMAGES = 120


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _processed(port: int) -> float:
    try:
        return _samples(_get(f"http://127.0.0.1:{port}/metrics")).get(
            ("camwatch_images_processed_total", (("status", "ok"),)), 0.0)
    except OSError:
        return -1.0


@pytest.fixture()
def running_worker(tmp_path: Path):  # type: ignore[no-untyped-def]
    src = plant_stream(tmp_path / "src")
    port = free_port()
    cmd = worker_cmd(f"sqlite:///{tmp_path / 'cw.db'}", str(src), spool=tmp_path / "spool",
                     extra=("--metrics-port", str(port)))
    log = tmp_path / "worker.log"
    with webhook_receiver() as hook:
        proc = spawn(cmd, log, CAMWATCH_PATH_TAGS='["site", "camera"]', CAMWATCH_REFERENCE__FIRST_N="60",
                     CAMWATCH_DRIFT__EVERY_BATCHES="1000", CAMWATCH_ALERTS__WEBHOOK_URL=hook.url)
        try:
            wait_for(lambda: _processed(port) >= N_IMAGES or proc.poll() is not None, 180, "all images processed")
            assert proc.poll() is None, log.read_text()[-3000:]
            yield port, proc
            # the webhook set by the environment got the drift of camera cam-2; its token is in no log line
            wait_for(lambda: any(b["rule"] == "drift" and b["subject"]["slice"] == "camera=cam-2"
                                 for b in hook.bodies()), 30, "a drift notice")
        finally:
            proc.terminate()
            proc.wait(30)
    assert "s3cr3t-token" not in log.read_text() and "notifying webhook (http://127.0.0.1:" in log.read_text()


def test_metrics_endpoint_serves_the_worker_metrics(running_worker: tuple[int, subprocess.Popen]) -> None:
    port, _ = running_worker
    def settled() -> bool:  # the loop refreshes the database gauges every 5 s
        samples = _samples(_get(f"http://127.0.0.1:{port}/metrics"))
        return (("camwatch_drift_state", (("slice", "all"), ("statistic", "brightness"))) in samples
                and [v for (name, _), v in samples.items() if name == "camwatch_backlog_images"] == [0.0])

    wait_for(settled, 30, "drift and backlog gauges")
    samples = _samples(_get(f"http://127.0.0.1:{port}/metrics"))
    assert samples[("camwatch_images_processed_total", (("status", "ok"),))] == N_IMAGES
    assert samples[("camwatch_images_processed_total", (("status", "error"),))] == 0
    for stage in ("read", "decode", "sidecar", "model", "statistics", "write"):
        assert samples[("camwatch_stage_duration_seconds_count", (("stage", stage),))] > 0, stage
    assert samples[("camwatch_stage_duration_seconds_count", (("stage", "decode"),))] == N_IMAGES
    assert ("camwatch_build_info", (("version", __import__("camwatch").__version__),)) in samples
    assert any(name == "camwatch_model_info" and dict(labels)["model"].endswith("models.py:build")
               for name, labels in samples)
    backlog = [v for (name, _labels), v in samples.items() if name == "camwatch_backlog_images"]
    assert backlog == [0.0]
    assert abs(samples[("camwatch_last_image_timestamp_seconds", ())] - time.time()) < 300
    assert samples[("camwatch_drift_state", (("slice", "all"), ("statistic", "brightness")))] == 1.0
    assert samples[("camwatch_drift_score", (("slice", "all"), ("statistic", "brightness")))] > 1.0
    assert not any(name.startswith("camwatch_drift") and dict(labels)["slice"] != "all" for name, labels in samples)
    assert samples[("camwatch_alerts_firing", (("rule", "drift"),))] >= 1
    assert not any(name.startswith(("process_", "python_gc")) for name, _ in samples)  # own registry


def test_a_real_prometheus_scrapes_the_worker(running_worker: tuple[int, subprocess.Popen], tmp_path: Path) -> None:
    port, _ = running_worker
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{REPO / 'deploy' / 'prometheus' / 'alerts.yml'}"]
scrape_configs:
  - job_name: camwatch
    static_configs:
      - targets: ["127.0.0.1:{port}"]
""")
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{web}"], stdout=log, stderr=subprocess.STDOUT)
    query = urllib.parse.quote('camwatch_images_processed_total{status="ok"}')

    def answered() -> bool:
        try:
            result = json.loads(_get(f"http://127.0.0.1:{web}/api/v1/query?query={query}"))["data"]["result"]
        except OSError:
            return False
        return bool(result) and float(result[0]["value"][1]) == N_IMAGES

    try:
        wait_for(answered, 60, "Prometheus answering the query")
        rules = json.loads(_get(f"http://127.0.0.1:{web}/api/v1/rules"))["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"CamwatchDrift", "CamwatchWorkerDown"}
        wait_for(lambda: any(a["labels"]["alertname"] == "CamwatchDrift" for a in json.loads(
            _get(f"http://127.0.0.1:{web}/api/v1/alerts"))["data"]["alerts"]), 30, "CamwatchDrift in Prometheus")
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def test_metrics_bind_to_localhost_by_default_on_their_own_registry() -> None:
    from prometheus_client import REGISTRY

    from camwatch.settings import load_settings
    from worker.service.metrics import WorkerMetrics

    settings = load_settings(db="sqlite://")
    metrics = WorkerMetrics(settings)
    port = metrics.serve(settings.metrics_host, 0)
    try:
        assert metrics._server.server_address[0] == "127.0.0.1" and port > 0
        assert "camwatch_build_info" in _get(f"http://127.0.0.1:{port}/metrics")
        assert REGISTRY.get_sample_value("camwatch_build_info", {"version": "0.2.0"}) is None
    finally:
        metrics.close()
