"""The worker service end to end: exactly once under SIGKILL, concurrent workers, SIGTERM, bad files,
and agreement of stored statistics with the explain command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from camwatch.settings import load_settings
from db import make_engine
from db.models import Heatmap, Prediction
from db.models import Image as ImageRow
from db.models_ops import WorkerHeartbeat
from tests.support import REPO
from tests.support.databases import postgres_schema
from tests.support.models import TINY_SPEC
from worker.cli import main
from worker.service.worker import Worker

ROOT = REPO
TINY = TINY_SPEC


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = folder / f"cam{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "images": conn.execute(select(func.count()).select_from(ImageRow)).scalar_one(),
                "ok": conn.execute(select(func.count()).where(ImageRow.status == "ok")).scalar_one(),
                "error": conn.execute(select(func.count()).where(ImageRow.status == "error")).scalar_one(),
                "predictions": conn.execute(select(func.count()).select_from(Prediction)).scalar_one(),
                "heatmaps": conn.execute(select(func.count()).select_from(Heatmap)).scalar_one(),
                "distinct_heatmaps": conn.execute(select(func.count(func.distinct(Heatmap.image_id)))).scalar_one(),
            }
    finally:
        engine.dispose()


def ok_so_far(url: str, db_file: Path) -> int:
    """Images done so far; 0 while the worker has not created the schema yet."""
    if not db_file.exists():
        return 0
    try:
        return counts(url)["ok"]
    except OperationalError:
        return 0


def worker_cmd(src: Path, url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "worker", "run", "--source", str(src), "--db", url, "--model", TINY,
            "--stable-seconds", "0.2", "--poll-seconds", "0.1", "--batch-size", "4", "--heartbeat-seconds", "0.3",
            "--dead-after-seconds", "1.5", *extra]


def spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def wait_for(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_sigkill_mid_run_then_restart_records_every_image_exactly_once(tmp_path):
    src = tmp_path / "src"
    n = 120
    make_images(src, n)
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    proc = spawn(worker_cmd(src, url), tmp_path / "first.log")
    try:
        wait_for(lambda: ok_so_far(url, tmp_path / "cw.db") >= 12, 120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    mid = counts(url)
    assert 0 < mid["ok"] < n, mid  # really killed mid-run
    done = subprocess.run(worker_cmd(src, url, "--once"), cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    final = counts(url)
    assert final == {"images": n, "ok": n, "error": 0, "predictions": n, "heatmaps": n, "distinct_heatmaps": n}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_concurrent_workers_never_process_an_image_twice(tmp_path, kind):
    src = tmp_path / "src"
    n = 80
    make_images(src, n, seed=1)

    def run(url: str) -> None:
        procs = [spawn(worker_cmd(src, url, "--once", "--worker-id", f"w{i}"), tmp_path / f"w{i}.log")
                 for i in range(2)]
        for p in procs:
            assert p.wait(300) == 0, (tmp_path / "w0.log").read_text()[-2000:]
        assert counts(url) == {"images": n, "ok": n, "error": 0, "predictions": n, "heatmaps": n,
                               "distinct_heatmaps": n}
        engine = make_engine(url)
        with engine.connect() as conn:
            beats = dict(conn.execute(select(WorkerHeartbeat.worker_id, WorkerHeartbeat.processed)).all())
        engine.dispose()
        assert set(beats) == {"w0", "w1"} and sum(beats.values()) == n  # together they did each image once

    if kind == "sqlite":
        run(f"sqlite:///{tmp_path / 'cw.db'}")
    else:
        with postgres_schema() as url:
            run(url)


def test_sigterm_finishes_the_batch_and_exits_cleanly(tmp_path):
    src = tmp_path / "src"
    make_images(src, 60, seed=2)
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    proc = spawn(worker_cmd(src, url), tmp_path / "w.log")
    wait_for(lambda: ok_so_far(url, tmp_path / "cw.db") >= 4, 120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    after = counts(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        processing = conn.execute(select(func.count()).where(ImageRow.status == "processing")).scalar_one()
        state = conn.execute(select(WorkerHeartbeat.state)).scalar_one()
    engine.dispose()
    assert processing == 0 and state == "stopped"  # claims released, nothing half-done
    assert after["ok"] == after["heatmaps"] == after["predictions"]
    assert "finishing the current batch" in (tmp_path / "w.log").read_text()


def test_bad_files_become_error_rows_and_the_batch_goes_on(tmp_path, photos):
    src = tmp_path / "src"
    src.mkdir()
    photos["chelsea"].save(src / "good.jpg")
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("not an image")
    (src / "half.jpg").write_bytes((src / "good.jpg").read_bytes()[:2000])
    (src / ".hidden.jpg").write_bytes((src / "good.jpg").read_bytes())
    (src / "copy.jpg").write_bytes((src / "good.jpg").read_bytes())  # duplicate bytes: a sighting only
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    settings = load_settings(db=url, source=[src], model=TINY, stable_seconds=0.1, poll_seconds=0.05)
    worker = Worker(settings)
    assert worker.work(burst=True) is True
    c = counts(url)
    assert c["images"] == 4 and c["ok"] == 1 and c["error"] == 3
    engine = make_engine(url)
    with engine.connect() as conn:
        errors = dict(conn.execute(select(ImageRow.uri, ImageRow.error).where(ImageRow.status == "error")).all())
    engine.dispose()
    assert any("empty file" in e for e in errors.values())
    assert any("truncated" in e for e in errors.values())
    assert any("not an allowed image format" in e for e in errors.values())
    assert all(Path(uri).name in e for uri, e in errors.items())  # each reason names its file
    # a second burst finds nothing new: nothing is processed twice
    again = Worker(settings)
    assert again.work(burst=True) is False
    assert counts(url) == c


def test_worker_statistics_match_the_explain_command(tmp_path, photos):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("chelsea", "coffee"):
        photos[name].save(src / f"{name}.jpg", quality=95)
    (src / "chelsea.jpg.json").write_text(json.dumps({"boxes": [[140, 20, 330, 300]], "label": "tabby"}))
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    settings = load_settings(db=url, source=[src], stable_seconds=0.1, poll_seconds=0.05, thumbnails="all")
    Worker(settings).work(burst=True)
    out = tmp_path / "export.jsonl"
    assert main(["export", "--db", url, "--format", "jsonl", "--out", str(out)]) == 0
    rows = {Path(r["uri"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert main(["explain", str(src / "chelsea.jpg"), str(src / "coffee.jpg"), "--box", "140,20,330,300",
                 "--out", str(tmp_path / "ex")]) == 0
    for name in ("chelsea.jpg", "coffee.jpg"):
        doc = json.loads((tmp_path / "ex" / f"{name}.cam.json").read_text())
        row = rows[name]
        assert row["class_index"] == doc["target_class"] and row["class_name"] == doc["target_class_name"]
        assert row["confidence"] == pytest.approx(doc["top5"][0]["probability"], rel=1e-5)
        np.testing.assert_allclose(row["heatmap"], doc["heatmap"], rtol=2e-3, atol=2e-4)  # float16 storage
        keys = ["centroid_x", "centroid_y", "spread", "entropy", "gini", "border_energy", "top5_share"]
        if name == "chelsea.jpg":
            keys += ["energy_outside", "object_area_fraction", "pointing_hit", "cam_box_iou"]
            assert json.loads(row["object_boxes"]) == [[140, 20, 330, 300]] and row["label"] == "tabby"
        for key in keys:
            assert row[key] == pytest.approx(doc["statistics"][key], abs=2e-3), key


def test_the_worker_limits_numpy_blas_to_one_thread_even_when_numpy_came_first(tmp_path):
    """Two BLAS threads spinning after the statistics' matrix products slowed the next forward pass by a
    third; the env default only works when ``worker`` is imported before numpy, so the service also
    limits the loaded pools at run time."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    src = tmp_path / "src"
    src.mkdir()
    threadpool_limits(limits=2, user_api="blas")  # as if numpy had been imported before the worker
    assert blas_threads() == {2}
    worker = Worker(load_settings(db=f"sqlite:///{tmp_path / 'cw.db'}", source=[src], model=TINY))
    assert blas_threads() == {2}  # the constructor does nothing
    worker.bootstrap()
    worker.close()
    assert blas_threads() == {1}
