"""Database faults under a running worker: SQLite locked for longer than the busy timeout (the worker waits
and goes on), a lock that outlasts the retry budget (a clean stop with the claims released), the SQLite
file deleted or replaced (detected), a real PostgreSQL restart in the middle of a run (the worker survives).
Nothing is lost or processed twice."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from camwatch.settings import load_settings
from db import make_engine
from db.faults import DatabaseUnavailable, is_transient, retry
from db.models import Heatmap
from db.models import Image as ImageRow
from db.models_ops import WorkerHeartbeat
from tests.support import REPO
from tests.support.databases import postgres_schema
from tests.support.models import TINY_SPEC
from worker.service.worker import Worker


def _images(src: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    src.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(src / f"i{i:03d}.png")


def _state(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            out = dict(conn.execute(select(ImageRow.status, func.count()).group_by(ImageRow.status)).all())
            out["heatmaps"] = conn.execute(select(func.count(func.distinct(Heatmap.image_id)))).scalar_one()
            out["rows"] = conn.execute(select(func.count()).select_from(Heatmap)).scalar_one()
    finally:
        engine.dispose()
    return out


def _ok(url: str) -> int:
    """Images done so far (0 while the schema does not exist yet)."""
    try:
        return _state(url).get("ok", 0)
    except (OperationalError, ProgrammingError):
        return 0


def _settings(url: str, src: Path, **extra: object):  # type: ignore[no-untyped-def]
    return load_settings(db=url, source=[src], model=TINY_SPEC, stable_seconds=0, poll_seconds=0.05,
                         use_events=False, batch_size=4, **extra)


def _lock_when_started(db_file: Path, url: str, hold: float, started: threading.Event) -> threading.Thread:
    """A thread that, once some images are done, holds SQLite's write lock for ``hold`` seconds."""
    def run() -> None:
        while _ok(url) < 4:
            time.sleep(0.02)
        conn = sqlite3.connect(db_file, timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        started.set()
        time.sleep(hold)
        conn.execute("COMMIT")
        conn.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sqlite_locked_longer_than_the_busy_timeout_is_waited_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src, db_file = tmp_path / "src", tmp_path / "cw.db"
    _images(src, 40)
    url = f"sqlite:///{db_file}"
    caplog.set_level(logging.WARNING)
    locked = threading.Event()
    locker = _lock_when_started(db_file, url, hold=2.0, started=locked)
    worker = Worker(_settings(url, src, db_busy_timeout_seconds=0.1, db_retry_seconds=60))
    assert worker.work(burst=True) is True
    locker.join(10)
    assert locked.is_set() and "transient database error" in caplog.text and "database is locked" in caplog.text
    assert _state(url) == {"ok": 40, "heatmaps": 40, "rows": 40}  # nothing lost, nothing twice


def test_a_lock_past_the_retry_budget_stops_the_worker_cleanly_and_a_restart_finishes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src, db_file = tmp_path / "src", tmp_path / "cw.db"
    _images(src, 40)
    url = f"sqlite:///{db_file}"
    locked = threading.Event()
    locker = _lock_when_started(db_file, url, hold=4.0, started=locked)
    worker = Worker(_settings(url, src, db_busy_timeout_seconds=0.1, db_retry_seconds=1.0))
    with pytest.raises(DatabaseUnavailable, match="stayed unavailable for 1 s"):
        worker.work(burst=True)
    locker.join(10)
    state = _state(url)
    assert "processing" not in state  # its claims were released once the lock was gone (teardown retries)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(WorkerHeartbeat.state)).scalar_one() == "stopped"
        assert conn.execute(select(func.max(ImageRow.attempts))).scalar_one() <= 1
    engine.dispose()
    assert Worker(_settings(url, src)).work(burst=True) is True
    assert _state(url) == {"ok": 40, "heatmaps": 40, "rows": 40}


def test_the_cli_exits_3_with_a_clear_message_when_the_database_stays_unavailable(tmp_path: Path) -> None:
    src, db_file = tmp_path / "src", tmp_path / "cw.db"
    _images(src, 2)
    url = f"sqlite:///{db_file}"
    conn = sqlite3.connect(db_file, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")  # the worker cannot even migrate the schema
    try:
        done = subprocess.run([sys.executable, "-m", "worker", "run", "--once", "--source", str(src), "--db", url,
                               "--model", TINY_SPEC], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO), "CAMWATCH_DB_RETRY_SECONDS": "1",
                                   "CAMWATCH_DB_BUSY_TIMEOUT_SECONDS": "0.1",
                                   "CAMWATCH_CONFIG": str(tmp_path / "none.toml")})
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert done.returncode == 3, done.stderr[-2000:]
    assert "error: database unavailable: upgrading the schema: the database stayed unavailable" in done.stderr


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_sqlite_file_deleted_or_replaced_under_the_worker_is_detected(tmp_path: Path, how: str) -> None:
    src, db_file = tmp_path / "src", tmp_path / "cw.db"
    _images(src, 8)
    url = f"sqlite:///{db_file}"
    worker = Worker(_settings(url, src))
    worker.bootstrap()
    if how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    else:
        shutil.copy(db_file, tmp_path / "other.db")
        os.replace(tmp_path / "other.db", db_file)
    with pytest.raises(DatabaseUnavailable, match=f"was {how}"):
        worker.work(burst=True)


def test_transient_errors_are_retried_and_persistent_ones_are_not() -> None:
    from sqlalchemy.exc import IntegrityError

    locked = OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
    full = OperationalError("UPDATE", {}, sqlite3.OperationalError("database or disk is full"))
    duplicate = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert is_transient(locked) and not is_transient(full) and not is_transient(duplicate)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise locked
        return "done"

    slept: list[float] = []
    assert retry(flaky, what="x", budget_seconds=10, sleep=slept.append) == "done" and slept == [0.1, 0.2]
    with pytest.raises(OperationalError):
        retry(lambda: (_ for _ in ()).throw(full), what="x", budget_seconds=10, sleep=slept.append)
    with pytest.raises(DatabaseUnavailable, match="writing: the database stayed unavailable"):
        retry(lambda: (_ for _ in ()).throw(locked), what="writing", budget_seconds=0.05,
              sleep=lambda s: time.sleep(0.02))


def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 60
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], timeout=10).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not come back after the restart"
        time.sleep(0.2)


def test_a_postgresql_restart_during_a_run_is_survived(tmp_path: Path) -> None:
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        pytest.fail("this test restarts the local PostgreSQL cluster: it needs pg_ctlcluster and /etc/postgresql")
    src = tmp_path / "src"
    _images(src, 160, seed=4)
    with postgres_schema() as url:
        log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", "--once", "--source", str(src), "--db", url, "--model", TINY_SPEC,
             "--batch-size", "4", "--stable-seconds", "0", "--poll-seconds", "0.05"], cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "CAMWATCH_CONFIG": str(tmp_path / "none.toml"),
                 "CAMWATCH_USE_EVENTS": "false", "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL, stderr=log.open("w"))
        try:
            deadline = time.monotonic() + 120
            while _ok(url) < 12:
                assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
            _restart_postgres()
            assert worker.wait(240) == 0, log.read_text()[-3000:]
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(30)
        text = log.read_text()
        assert "transient database error" in text  # it really met the restart, and retried
        assert _state(url) == {"ok": 160, "heatmaps": 160, "rows": 160}
