"""End to end: a worker on a planted stream (camera cam-2 turns bright on the second day) stores drift, and
the drift alert about camera=cam-2 reaches a real local webhook receiver with the right subject; cam-1
stays quiet. A dead or failing receiver neither stops nor slows the worker."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from camwatch.settings import Settings, load_settings
from db import make_engine
from db.models import DriftResult
from tests.support.models import TINY_SPEC
from tests.support.planted import CHANGE, plant_stream
from tests.support.receivers import free_port, webhook_receiver
from worker.service.worker import Worker


def _settings(tmp_path: Path, src: Path, name: str, **alerts: object) -> Settings:
    return load_settings(db=f"sqlite:///{tmp_path / f'{name}.db'}", source=[src], model=TINY_SPEC,
                         path_tags=["site", "camera"], stable_seconds=0.0, poll_seconds=0.05, batch_size=16,
                         reference={"first_n": 60}, drift={"statistics": ["brightness", "contrast", "energy_outside"]},
                         alerts={"flagged_share": {"enabled": False}, "backoff_seconds": 0.2, "max_attempts": 3,
                                 **alerts}, dashboard={"public_url": "https://cams.example.org"})


def test_planted_drift_reaches_the_webhook_with_its_subject(tmp_path: Path) -> None:
    src = plant_stream(tmp_path / "src")
    with webhook_receiver() as hook:
        settings = _settings(tmp_path, src, "e2e", webhook_url=hook.url)
        began = time.monotonic()
        Worker(settings).work(burst=True)
        elapsed = time.monotonic() - began
        bodies = hook.bodies()
    engine = make_engine(settings.db)
    with engine.connect() as conn:
        cam2 = conn.execute(select(DriftResult.drifted).where(DriftResult.statistic == "brightness",
                                                              DriftResult.slice == "camera=cam-2",
                                                              DriftResult.window_start >= CHANGE.replace(hour=0))).all()
    engine.dispose()
    assert cam2 and all(r.drifted for r in cam2)
    drift = [b for b in bodies if b["rule"] == "drift" and b["status"] == "firing"]
    subjects = {(b["subject"]["statistic"], b["subject"]["slice"]) for b in drift}
    assert ("brightness", "camera=cam-2") in subjects
    assert not any(s == "camera=cam-1" for _, s in subjects)  # the unchanged camera stays quiet
    notice = next(b for b in drift if b["subject"]["statistic"] == "brightness"
                  and b["subject"]["slice"] == "camera=cam-2")
    assert notice["summary"].startswith("camera=cam-2: brightness rose from ")
    assert notice["since"].startswith("2026-11-07")
    assert notice["links"]["drift"] == "https://cams.example.org/drift?statistic=brightness&slice=camera%3Acam-2"
    assert notice["value"] is not None and notice["threshold"] is not None
    assert elapsed < 120


def test_a_dead_or_failing_receiver_does_not_stop_or_slow_the_worker(tmp_path: Path) -> None:
    src = plant_stream(tmp_path / "src")
    times: dict[str, list[float]] = {"none": [], "refused": [], "http500": []}
    with webhook_receiver(status=500, delay=1.0) as failing:
        urls = {"none": None, "refused": f"http://127.0.0.1:{free_port()}/hook", "http500": failing.url}
        for round_ in range(2):  # interleaved rounds: the ratio, not the absolute time, is what counts
            for name, url in urls.items():
                settings = _settings(tmp_path, src, f"{name}-{round_}", webhook_url=url)
                settings.drift.every_batches = 1  # drift and alerts after every batch: notices while working
                worker = Worker(settings)
                began = time.monotonic()
                assert worker.work(burst=True)
                times[name].append(time.monotonic() - began)
                assert worker.processed == 120 and worker.errors == 0
        assert failing.requests >= 1
    base = min(times["none"])
    for name in ("refused", "http500"):
        # close() gives a failing receiver at most 5 s to drain; processing itself is not slowed
        assert min(times[name]) < base * 1.5 + 6.0, times
