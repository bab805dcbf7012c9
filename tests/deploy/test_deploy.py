"""deploy/: the Prometheus rules pass ``promtool check rules`` and fire in ``promtool test rules`` as the
built-in rules would; the Grafana dashboard passes a JSON-schema sanity check; every metric they (and
docs/metrics.md) name is one the worker exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

from camwatch.settings import load_settings
from tests.support import REPO
from worker.service.metrics import WorkerMetrics

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
GRAFANA = REPO / "deploy" / "grafana" / "camwatch.json"
PROMTOOL = "/usr/bin/promtool"
_METRIC = re.compile(r"\bcamwatch_[a-z_]+\b")


def exported() -> set[str]:
    """Every sample name the worker's registry can expose (counters with ``_total``, histogram series)."""
    metrics = WorkerMetrics(load_settings(db="sqlite://"))
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names |= {f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count", "_created")}
    return names


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


UNIT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'camwatch_drift_state{{statistic="brightness",slice="camera=cam-2",job="camwatch",instance="w"}}'
        values: '0 0 1 1 1'
      - series: 'camwatch_drift_state{{statistic="brightness",slice="camera=cam-1",job="camwatch",instance="w"}}'
        values: '0 0 0 0 0'
      - series: 'camwatch_images_processed_total{{status="ok",job="camwatch",instance="w"}}'
        values: '0+90x70'
      - series: 'camwatch_images_processed_total{{status="error",job="camwatch",instance="w"}}'
        values: '0+10x70'
      - series: 'camwatch_images_flagged_total{{job="camwatch",instance="w"}}'
        values: '0+9x70'
      - series: 'up{{job="camwatch",instance="w"}}'
        values: '1 1 0 0 0'
    alert_rule_test:
      - eval_time: 1m
        alertname: CamwatchDrift
        exp_alerts: []
      - eval_time: 3m
        alertname: CamwatchDrift
        exp_alerts:
          - exp_labels: {{severity: warning, statistic: brightness, slice: camera=cam-2}}
            exp_annotations:
              summary: "camwatch: brightness drifted (camera=cam-2)"
              description: "The newest window's stored drift decision of brightness in slice camera=cam-2 is 'drifted' (camwatch_drift_score gives its strength: 1 = the threshold)."
      - eval_time: 4m
        alertname: CamwatchWorkerDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: camwatch, instance: w}}
            exp_annotations: {{summary: "camwatch worker w is not answering /metrics"}}
      - eval_time: 70m
        alertname: CamwatchErrorRateHigh
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations: {{summary: "camwatch: 10% of the last hour's images failed"}}
      - eval_time: 70m
        alertname: CamwatchFlaggedShareHigh
        exp_alerts: []
"""


def test_the_rules_fire_as_the_built_in_ones(tmp_path: Path) -> None:
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(UNIT_TESTS.format(rules=RULES))
    result = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


GRAFANA_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "panels", "schemaVersion", "templating"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "templating": {"type": "object", "required": ["list"]},
        "panels": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "type", "title", "gridPos", "targets", "datasource"],
            "properties": {
                "id": {"type": "integer"},
                "type": {"enum": ["timeseries", "stat", "table", "bargauge", "gauge", "text"]},
                "gridPos": {"type": "object", "required": ["x", "y", "w", "h"], "properties": {
                    "x": {"type": "integer", "minimum": 0, "maximum": 23},
                    "w": {"type": "integer", "minimum": 1, "maximum": 24},
                    "y": {"type": "integer", "minimum": 0}, "h": {"type": "integer", "minimum": 1}}},
                "datasource": {"type": "object", "required": ["type", "uid"],
                               "properties": {"type": {"const": "prometheus"}}},
                "targets": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["refId", "expr"],
                    "properties": {"expr": {"type": "string", "pattern": "camwatch_"}}}}}}},
    },
}


def test_grafana_dashboard_is_sane() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    jsonschema.validate(dashboard, GRAFANA_SCHEMA)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**dashboard, "panels": [{"id": 1, "type": "graph"}]}, GRAFANA_SCHEMA)


@pytest.mark.parametrize("path", [RULES, GRAFANA, REPO / "docs" / "metrics.md"], ids=lambda p: p.name)
def test_every_metric_named_is_exported(path: Path) -> None:
    named = set(_METRIC.findall(path.read_text()))
    assert named, path
    assert named <= exported(), sorted(named - exported())


def test_every_exported_metric_is_documented() -> None:
    docs = (REPO / "docs" / "metrics.md").read_text()
    families = {f.name for f in WorkerMetrics(load_settings(db="sqlite://")).registry.collect()}
    for name in families:
        assert f"`{name}" in docs, name
