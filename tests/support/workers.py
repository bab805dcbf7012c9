"""Worker subprocesses for the end-to-end tests of the queue sources, and what they left in the database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from db import make_engine
from db.models import Flag, Heatmap, ImageTag, Sighting
from db.models import Image as ImageRow
from db.models_ops import WorkerHeartbeat
from tests.support import REPO
from tests.support.models import TINY_SPEC


def worker_cmd(db_url: str, *sources: str, spool: Path, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "worker", "run", "--db", db_url, "--model", TINY_SPEC, "--poll-seconds", "0.1",
           "--batch-size", "4", "--spool-dir", str(spool), "--stable-seconds", "0.2"]
    for source in sources:
        cmd += ["--source", source]
    return cmd + list(extra)


def worker_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "CAMWATCH_CONFIG": str(REPO / "tests" / "absent.toml"), **extra}


def spawn(cmd: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=REPO, env=worker_env(**env), stdout=subprocess.DEVNULL, stderr=log.open("w"))


def run_once(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, "--once"], cwd=REPO, env=worker_env(), capture_output=True, text=True,
                          timeout=timeout)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:g} s")


def db_counts(url: str) -> dict[str, int]:
    """Images by status, heatmaps (and distinct images with one), event sightings (first and duplicate)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            def count(stmt: object) -> int:
                return int(conn.execute(stmt).scalar_one())  # type: ignore[call-overload]
            return {
                "images": count(select(func.count()).select_from(ImageRow)),
                "ok": count(select(func.count()).where(ImageRow.status == "ok")),
                "error": count(select(func.count()).where(ImageRow.status == "error")),
                "heatmaps": count(select(func.count()).select_from(Heatmap)),
                "distinct_heatmaps": count(select(func.count(func.distinct(Heatmap.image_id)))),
                "events": count(select(func.count(func.distinct(Sighting.event_id)))
                                .where(Sighting.event_id.is_not(None))),
                "first_sightings": count(select(func.count()).where(Sighting.event_id.is_not(None),
                                                                    Sighting.is_duplicate.is_(False))),
                "redeliveries": count(select(func.count()).where(Sighting.uri.like("event:%@%"))),
            }
    finally:
        engine.dispose()


def ok_count(url: str) -> int:
    """Images done so far; 0 while the schema does not exist yet."""
    try:
        return db_counts(url)["ok"]
    except OperationalError:
        return 0


def processed_by_worker(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {str(w): int(n) for w, n in conn.execute(select(WorkerHeartbeat.worker_id,
                                                                   WorkerHeartbeat.processed))}
    finally:
        engine.dispose()


def tag_values(url: str, key: str) -> list[str]:
    """The values of tag ``key`` over all images, sorted, with repetitions."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(str(v) for v in conn.execute(select(ImageTag.value).where(ImageTag.key == key)).scalars())
    finally:
        engine.dispose()


def _scalars(url: str, stmt: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(stmt).scalars())
    finally:
        engine.dispose()


def image_uris(url: str) -> list[str]:
    return [str(u) for u in _scalars(url, select(ImageRow.uri))]


def flagged_uris(url: str) -> set[str]:
    return {str(u) for u in _scalars(url, select(ImageRow.uri).join(Flag, Flag.image_id == ImageRow.id))}


def duplicate_sightings(url: str) -> int:
    return int(_scalars(url, select(func.count()).where(Sighting.is_duplicate.is_(True)))[0])


def error_reasons(url: str) -> dict[str, str]:
    """``{event id: error}`` of the images in status 'error' that queue events brought."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Sighting.event_id, ImageRow.error).join(ImageRow, ImageRow.id == Sighting.image_id)
                                .where(ImageRow.status == "error", Sighting.event_id.is_not(None))).all()
    finally:
        engine.dispose()
    return {str(e): str(r) for e, r in rows}
