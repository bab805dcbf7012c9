"""Leases and heartbeats while a batch runs: a batch slower than the lease, with a second worker waiting for
work, is never processed twice; a worker restarted under its id waits for its predecessor's heartbeat to go
stale, and refuses to start beside a live one."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from db import make_engine, write_heartbeat
from db.models import Image as ImageRow
from db.models_ops import WorkerHeartbeat
from db.types import utcnow
from tests.support import REPO
from tests.support.databases import migrated_engine
from tests.support.models import TINY_SPEC
from worker.service.recovery import recover_silent_workers, wait_for_predecessor


def _images(src: Path, n: int) -> None:
    rng = np.random.default_rng(3)
    src.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(src / f"i{i:02d}.png")


def _spawn(args: list[str], log: Path, slow: float | None = None) -> subprocess.Popen:
    head = [sys.executable, "-m", "tests.support.faulty_worker", "slow", str(slow), "--"] if slow else \
        [sys.executable, "-m", "worker"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAMWATCH_CONFIG": str(log.parent / "none.toml"),
           "CAMWATCH_USE_EVENTS": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*head, *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def test_a_batch_slower_than_the_lease_is_never_taken_by_a_second_worker(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _images(src, 12)
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    common = ["run", "--once", "--source", str(src), "--db", url, "--model", TINY_SPEC, "--batch-size", "4",
              "--stable-seconds", "0", "--poll-seconds", "0.05", "--lease-seconds", "1", "--heartbeat-seconds", "0.25",
              "--dead-after-seconds", "5"]
    slow = _spawn([*common, "--worker-id", "slow"], tmp_path / "slow.log", slow=2.5)  # 2.5 s per batch > 1 s lease
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the slow worker holds its first batch
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                held = conn.execute(select(func.count()).where(ImageRow.status == "processing")).scalar_one()
        except Exception:  # the schema is not there yet
            held = 0
        finally:
            engine.dispose()
        if held:
            break
        time.sleep(0.1)
    fast = _spawn([*common, "--worker-id", "fast"], tmp_path / "fast.log")
    assert fast.wait(120) == 0 and slow.wait(120) == 0, (tmp_path / "slow.log").read_text()[-2000:]
    engine = make_engine(url)
    with engine.connect() as conn:
        attempts = conn.execute(select(ImageRow.attempts, ImageRow.status)).all()
        done = dict(conn.execute(select(WorkerHeartbeat.worker_id, WorkerHeartbeat.processed)).all())
    engine.dispose()
    assert sorted(attempts) == [(1, "ok")] * 12  # nobody re-claimed a renewed lease: each image claimed once
    assert done["slow"] >= 4 and done["slow"] + done["fast"] == 12
    logs = (tmp_path / "slow.log").read_text() + (tmp_path / "fast.log").read_text()
    assert "no longer held" not in logs and "another worker holds now" not in logs


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def test_recovery_ends_only_silent_workers_claims_by_instance_not_pid(engine) -> None:  # type: ignore[no-untyped-def]
    from db import claim_batch, register_file, session_scope

    with session_scope(engine, write=True) as session:
        for i in range(4):
            register_file(session, uri=f"/s/{i}.jpg", sha256=f"{i:064x}", size_bytes=1, mtime_ns=1, source="s",
                          captured_at=utcnow())
    # two workers with the same hostname and pid (separate pid namespaces): only heartbeat age tells them apart
    for worker_id, instance in (("silent", "i-silent"), ("alive", "i-alive")):
        write_heartbeat(engine, worker_id=worker_id, instance_id=instance, hostname="h", pid=1, state="running")
        claim_batch(engine, instance, 2, lease_seconds=3600)
    with engine.begin() as conn:
        conn.execute(WorkerHeartbeat.__table__.update().where(WorkerHeartbeat.worker_id == "silent")
                     .values(last_seen_at=utcnow() - dt.timedelta(seconds=120)))
    assert recover_silent_workers(engine, me="i-me", dead_after_seconds=60) == 2
    with engine.connect() as conn:
        leases = dict(conn.execute(select(ImageRow.claimed_by, func.max(ImageRow.lease_until))
                                   .group_by(ImageRow.claimed_by)).all())
        states = dict(conn.execute(select(WorkerHeartbeat.worker_id, WorkerHeartbeat.state)).all())
    assert leases["i-silent"] <= utcnow() < leases["i-alive"]  # the live worker keeps its claims
    assert states == {"silent": "stopped", "alive": "running"}
    assert recover_silent_workers(engine, me="i-me", dead_after_seconds=60) == 0  # once


def test_a_restart_under_the_same_id_waits_for_the_predecessor_and_refuses_a_live_twin(engine) -> None:  # type: ignore[no-untyped-def]
    write_heartbeat(engine, worker_id="w", instance_id="old", hostname="h", pid=1, state="running")
    slept: list[float] = []
    wait_for_predecessor(engine, "w", me="new", heartbeat_seconds=0.1, dead_after_seconds=0.3,
                         sleep=lambda s: (slept.append(s), time.sleep(s)))  # type: ignore[func-returns-value]
    assert 2 <= len(slept) <= 6  # waited about dead_after for the silent predecessor, then went on

    def beating(seconds: float) -> None:  # the twin is alive: its heartbeat advances
        time.sleep(seconds)
        write_heartbeat(engine, worker_id="w", instance_id="old", hostname="h", pid=1, state="running")

    with pytest.raises(ValueError, match="used by another running process"):
        wait_for_predecessor(engine, "w", me="new", heartbeat_seconds=0.1, dead_after_seconds=5, sleep=beating)
    write_heartbeat(engine, worker_id="w", instance_id="old", hostname="h", pid=1, state="stopped")
    wait_for_predecessor(engine, "w", me="new", heartbeat_seconds=0.1, dead_after_seconds=5,
                         sleep=lambda s: pytest.fail("a stopped predecessor needs no wait"))
