"""Retention: delete the bulky per-image data of old images in small transactions, then give the space back.

What an image older than the cutoff (by capture time) loses: its heatmaps, prediction, flags, tags,
sightings, review claims and thumbnail, region and tags JSON. What stays: its ``images`` row as a
tombstone (sha256, uri, capture time, status, size, label, image properties, camera model; ``pruned_at``
set), so the same bytes are never registered and processed again, and counts of processed images stay
true. Never touched: drift results, alert history, reviews and the audit trail, references and their
member images (a reference must stay rebuildable), images still pending or processing. Options keep
flagged images (``keep_flagged``) or reviewed ones (``keep_reviewed``) whole.

Without blocking the worker: each transaction handles at most ``batch_size`` images (one write lock for a
few tens of milliseconds on SQLite), with ``pause_seconds`` between transactions, so the worker's commits
interleave. Candidates are walked in ``(captured_at, id)`` order with a keyset cursor, so a run costs one
pass over the old rows however many batches it takes; ``stop`` (a callable) ends a run between batches.

Space: PostgreSQL's autovacuum reuses it. On SQLite, freed pages go to the freelist (reused by new rows);
a database in ``auto_vacuum = INCREMENTAL`` mode (every database created by this version, see
:mod:`db.session`) gives them back to the file system with ``PRAGMA incremental_vacuum`` in steps of
:data:`VACUUM_STEP_PAGES`; an older database needs one full ``VACUUM`` (``camwatch prune --vacuum``, which
blocks writers while it rewrites the file) to switch to that mode.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, exists, func, select, tuple_, update
from sqlalchemy.engine import Connection

from db.models import Flag, Heatmap, Image, ImageTag, Prediction, ReferenceMember, Review, Sighting
from db.models_qa import MaintenanceRun, ReviewClaim
from db.queries_slices import database_size
from db.session import dialect_insert, write_transaction
from db.types import utcnow

log = logging.getLogger(__name__)

VACUUM_STEP_PAGES = 2048  # pages freed per incremental_vacuum transaction (8 MiB with 4 KiB pages)
#: Tables whose rows belong to an image and are deleted with its bulky data, in deletion order.
PRUNED_TABLES: tuple[type, ...] = (Heatmap, Prediction, Flag, ImageTag, Sighting, ReviewClaim)
TASK = "prune"


@dataclass(frozen=True)
class PruneOptions:
    older_than: dt.timedelta
    keep_flagged: bool = False
    keep_reviewed: bool = False
    batch_size: int = 500
    pause_seconds: float = 0.05
    vacuum: bool = True  # incremental vacuum afterwards (SQLite in incremental mode)
    full_vacuum: bool = False  # one full VACUUM (SQLite; blocks writers)

    def __post_init__(self) -> None:
        if self.older_than <= dt.timedelta(0):
            raise ValueError(f"prune: the age must be positive, got {self.older_than}")
        if self.batch_size < 1:
            raise ValueError(f"prune: batch_size must be at least 1, got {self.batch_size}")


@dataclass
class PruneReport:
    cutoff: dt.datetime
    images: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # deleted rows per table
    batches: int = 0
    seconds: float = 0.0
    longest_batch_seconds: float = 0.0
    bytes_before: int | None = None
    bytes_after: int | None = None
    vacuum: str = ""
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat(), "images": self.images, "rows": self.rows,
                "batches": self.batches, "seconds": round(self.seconds, 3),
                "longest_batch_seconds": round(self.longest_batch_seconds, 4), "bytes_before": self.bytes_before,
                "bytes_after": self.bytes_after, "vacuum": self.vacuum, "stopped": self.stopped}


def parse_age(text: str) -> dt.timedelta:
    """``"90d"``, ``"12h"``, ``"30m"`` or ``"2w"`` as a duration; ``ValueError`` naming the problem otherwise."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    value, unit = text[:-1].strip(), text[-1:].lower()
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if unit not in units or not number > 0:
        raise ValueError(f"age {text!r}: expected a positive number and a unit m, h, d or w (e.g. 90d)")
    return dt.timedelta(**{units[unit]: number})


def _candidates(conn: Connection, cutoff: dt.datetime, options: PruneOptions,
                after: tuple[dt.datetime, int] | None, limit: int | None = None) -> list[tuple[int, dt.datetime]]:
    """The next images to prune in ``(captured_at, id)`` order after ``after``. The status test is written
    ``status || ''`` so that SQLite walks the capture-time index (measured on 1M images: with the status
    index it read every processed row and sorted them, 0.8-1.4 s per batch; this way 30 ms)."""
    stmt = (select(Image.id, Image.captured_at)
            .where(Image.captured_at < cutoff, Image.pruned_at.is_(None),
                   Image.status.concat("").in_(("ok", "error")), Image.id.not_in(select(ReferenceMember.image_id)))
            .order_by(Image.captured_at, Image.id).limit(limit or options.batch_size))
    if options.keep_flagged:
        stmt = stmt.where(~exists().where(Flag.image_id == Image.id))
    if options.keep_reviewed:
        stmt = stmt.where(~exists().where(Review.image_id == Image.id))
    if after is not None:
        stmt = stmt.where(tuple_(Image.captured_at, Image.id) > tuple_(*after))
    return [(int(i), c) for i, c in conn.execute(stmt)]


def _prune_batch(conn: Connection, ids: list[int], now: dt.datetime, rows: dict[str, int]) -> None:
    for table in PRUNED_TABLES:
        deleted = conn.execute(delete(table).where(table.image_id.in_(ids))).rowcount  # type: ignore[attr-defined]
        rows[table.__tablename__] = rows.get(table.__tablename__, 0) + int(deleted)  # type: ignore[attr-defined]
    conn.execute(update(Image).where(Image.id.in_(ids))
                 .values(thumbnail=None, region=None, tags=None, pruned_at=now))


def _vacuum(engine: Engine, options: PruneOptions, stop: Callable[[], bool]) -> str:
    if engine.dialect.name != "sqlite":
        return "PostgreSQL: freed space is reused (autovacuum)"
    with engine.connect() as conn:
        mode = int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one())
        free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
    if options.full_vacuum:
        began = time.perf_counter()
        raw = engine.raw_connection()  # VACUUM cannot run inside a transaction: the driver's own autocommit
        try:
            raw.driver_connection.execute("PRAGMA auto_vacuum = INCREMENTAL")  # type: ignore[union-attr]
            raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
        finally:
            raw.close()
        _checkpoint(engine)
        return f"full VACUUM in {time.perf_counter() - began:.1f} s ({free} free pages; now incremental)"
    if mode != 2:
        return (f"{free} free pages reused by new rows; the file shrinks only after one full VACUUM "
                "(camwatch prune --vacuum), since this database predates incremental auto-vacuum")
    if not options.vacuum:
        return f"{free} free pages left for reuse (--no-vacuum)"
    steps = 0
    while free > 0 and not stop():
        with write_transaction(engine) as conn:
            # Each step of the statement frees one page, and Python's sqlite3 steps a statement without
            # result columns only once: run it once per page on the transaction's own DBAPI cursor.
            cursor = conn.connection.cursor()
            try:
                for _ in range(min(free, VACUUM_STEP_PAGES)):
                    cursor.execute("PRAGMA incremental_vacuum(1)")
            finally:
                cursor.close()
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
        steps += 1
        time.sleep(options.pause_seconds)
    _checkpoint(engine)
    return f"incremental vacuum: {steps} transactions of up to {VACUUM_STEP_PAGES} pages, {free} free pages left"


def _checkpoint(engine: Engine) -> None:
    """Write the WAL back so the file shrinks (waits for readers up to the busy timeout, then gives up)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()


def prune(engine: Engine, options: PruneOptions, *, runner: str = "cli", now: dt.datetime | None = None,
          stop: Callable[[], bool] = lambda: False) -> PruneReport:
    """Prune the images captured before ``now - options.older_than`` (module docstring)."""
    now = now or utcnow()
    report = PruneReport(cutoff=now - options.older_than, bytes_before=database_size(engine))
    began = time.perf_counter()
    with engine.connect() as conn:  # where to start, found outside any write transaction (it may walk past
        first = _candidates(conn, report.cutoff, options, None, limit=1)  # every tombstone of earlier runs)
    after: tuple[dt.datetime, int] | None = (first[0][1], first[0][0] - 1) if first else None
    while first:
        if stop():
            report.stopped = True
            break
        batch_began = time.perf_counter()
        with write_transaction(engine) as conn:
            found = _candidates(conn, report.cutoff, options, after)
            if found:
                _prune_batch(conn, [i for i, _ in found], now, report.rows)
        if not found:
            break
        report.longest_batch_seconds = max(report.longest_batch_seconds, time.perf_counter() - batch_began)
        report.images += len(found)
        report.batches += 1
        after = (found[-1][1], found[-1][0])
        if report.batches % 200 == 0:
            log.info("prune: %d images so far (captured up to %s)", report.images, after[0])
        time.sleep(options.pause_seconds)
    report.vacuum = _vacuum(engine, options, stop) if report.images or options.full_vacuum else "nothing freed"
    report.seconds = time.perf_counter() - began
    report.bytes_after = database_size(engine)
    _record_run(engine, runner, started=now, finished=now + dt.timedelta(seconds=report.seconds),
                detail=report.to_json())
    log.info("prune: %d images older than %s pruned in %.1f s (%d batches, longest %.3f s); %s", report.images,
             report.cutoff.isoformat(), report.seconds, report.batches, report.longest_batch_seconds, report.vacuum)
    return report


def _record_run(engine: Engine, runner: str, *, started: dt.datetime, finished: dt.datetime | None,
                detail: dict[str, Any]) -> None:
    with write_transaction(engine) as conn:
        stmt = dialect_insert(conn.dialect.name, MaintenanceRun).values(
            task=TASK, started_at=started, finished_at=finished, runner=runner[:200], runs=1, detail=detail)
        conn.execute(stmt.on_conflict_do_update(index_elements=["task"], set_={
            "started_at": stmt.excluded.started_at, "finished_at": stmt.excluded.finished_at,
            "runner": stmt.excluded.runner, "detail": stmt.excluded.detail,
            "runs": MaintenanceRun.runs + 1}))  # runs counts finished runs


def last_run(engine: Engine, task: str = TASK) -> tuple[dt.datetime, dt.datetime | None, dict[str, Any]] | None:
    """``(started_at, finished_at, detail)`` of the task's last run, or None when it never ran."""
    with engine.connect() as conn:
        row = conn.execute(select(MaintenanceRun.started_at, MaintenanceRun.finished_at, MaintenanceRun.detail)
                           .where(MaintenanceRun.task == task)).one_or_none()
    return None if row is None else (row.started_at, row.finished_at, dict(row.detail or {}))


def table_rows(engine: Engine) -> dict[str, int]:
    """Rows per table that retention touches (and ``images`` / ``pruned images``)."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        counts["images"] = int(conn.execute(select(func.count()).select_from(Image)).scalar_one())
        counts["pruned images"] = int(conn.execute(select(func.count()).select_from(Image)
                                                   .where(Image.pruned_at.is_not(None))).scalar_one())
        counts["thumbnails"] = int(conn.execute(select(func.count()).select_from(Image)
                                                .where(Image.thumbnail.is_not(None))).scalar_one())
        for table in PRUNED_TABLES:
            counts[table.__tablename__] = int(conn.execute(  # type: ignore[attr-defined]
                select(func.count()).select_from(table)).scalar_one())
    return counts


def try_begin(engine: Engine, runner: str, every: dt.timedelta, *, stale_after: dt.timedelta = dt.timedelta(hours=6),
              task: str = TASK, now: dt.datetime | None = None) -> bool:
    """Atomically take the next periodic run of ``task``: True (and the run recorded as started by
    ``runner``) when it never ran, its last run finished ``every`` ago or more, or a run started
    ``stale_after`` ago never finished (its runner died); False otherwise. Of several workers asking at once,
    one gets True."""
    now = now or utcnow()
    with write_transaction(engine) as conn:
        row = conn.execute(select(MaintenanceRun.started_at, MaintenanceRun.finished_at)
                           .where(MaintenanceRun.task == task)).one_or_none()
        if row is not None:
            running = row.finished_at is None or row.finished_at < row.started_at
            if running and now - row.started_at < stale_after:
                return False
            if not running and now - row.finished_at < every:
                return False
        stmt = dialect_insert(conn.dialect.name, MaintenanceRun).values(
            task=task, started_at=now, finished_at=None, runner=runner[:200], runs=0, detail={})
        conn.execute(stmt.on_conflict_do_update(index_elements=["task"], set_={
            "started_at": now, "finished_at": None, "runner": stmt.excluded.runner}))
    return True


def count_candidates(engine: Engine, options: PruneOptions, now: dt.datetime | None = None) -> int:
    """How many images a run with ``options`` would prune now (``--dry-run``)."""
    cutoff = (now or utcnow()) - options.older_than
    stmt = (select(func.count()).select_from(Image)
            .where(Image.captured_at < cutoff, Image.pruned_at.is_(None), Image.status.in_(("ok", "error")),
                   Image.id.not_in(select(ReferenceMember.image_id))))
    if options.keep_flagged:
        stmt = stmt.where(~exists().where(Flag.image_id == Image.id))
    if options.keep_reviewed:
        stmt = stmt.where(~exists().where(Review.image_id == Image.id))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
