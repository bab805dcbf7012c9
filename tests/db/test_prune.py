"""Retention: what goes, what stays, exactly-once afterwards, space given back, interleaving with writers."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, update

from db.models import DriftResult, Flag, Heatmap, Image, Prediction, Reference, Review, Sighting
from db.monitoring import processed_index
from db.prune import PruneOptions, count_candidates, last_run, parse_age, prune, table_rows, try_begin
from db.records import FileFound, RegisterOutcome
from db.registry import register_files
from db.session import session_scope, write_transaction
from db.writes import add_review
from tests.support.databases import migrated_engine
from tests.support.qa import T0, add_reference, seed_images

NOW = T0 + dt.timedelta(days=120)
OLD = 30  # images 1..30 captured on day 0, older than 90 days at NOW
FLAGGED = {3, 4}  # old and flagged
REVIEWED = 5  # old, flagged and reviewed
MEMBERS = [1, 2]  # old reference members


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def _seed(engine: Engine) -> None:
    values = [0.7 if i + 1 in {*FLAGGED, REVIEWED} else None for i in range(OLD)]
    seeded = seed_images(engine, OLD, flag_values=values, step=dt.timedelta(minutes=1))
    seed_images(engine, 10, start=NOW - dt.timedelta(days=1), first_id=OLD + 1, flag_values=[0.9] * 10)
    ref = add_reference(engine, seeded.model_version_id, MEMBERS)
    with session_scope(engine, write=True) as session:
        add_review(session, REVIEWED, "false_alarm", None, "ana")
    with write_transaction(engine) as conn:
        conn.execute(insert(DriftResult).values(
            reference_id=ref, window_kind="day", window_start=T0, window_end=T0 + dt.timedelta(days=1),
            statistic="brightness", class_index=-1, test="ks", score=0.5, threshold=0.05, drifted=False,
            n_reference=2, n_current=30, computed_at=T0, slice=""))


def _ids(engine: Engine, table: type) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(select(table.image_id)).scalars())  # type: ignore[attr-defined]


@pytest.mark.parametrize("keep_flagged, keep_reviewed, expected_kept", [
    (False, False, set(MEMBERS)),
    (True, False, {*MEMBERS, *FLAGGED, REVIEWED}),
    (False, True, {*MEMBERS, REVIEWED}),
])
def test_old_images_lose_their_bulky_data_and_keep_a_tombstone(engine: Engine, keep_flagged: bool,
                                                               keep_reviewed: bool, expected_kept: set[int]) -> None:
    _seed(engine)
    options = PruneOptions(older_than=parse_age("90d"), keep_flagged=keep_flagged, keep_reviewed=keep_reviewed,
                           batch_size=7, pause_seconds=0)
    expected_pruned = set(range(1, OLD + 1)) - expected_kept
    assert count_candidates(engine, options, now=NOW) == len(expected_pruned)
    report = prune(engine, options, now=NOW)
    assert report.images == len(expected_pruned) and report.batches == -(-len(expected_pruned) // 7)
    held = set(range(1, OLD + 11)) - expected_pruned
    for table in (Heatmap, Prediction, Sighting):
        assert _ids(engine, table) == held, table
    assert _ids(engine, Flag) == ({*FLAGGED, REVIEWED} | set(range(OLD + 1, OLD + 11))) - expected_pruned
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(Image.id, Image.pruned_at, Image.thumbnail, Image.sha256,
                                                     Image.status, Image.brightness))}
        assert conn.execute(select(func.count()).select_from(DriftResult)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(Review)).scalar_one() == 1
        assert conn.execute(select(Reference.n_images)).scalar_one() == len(MEMBERS)
    assert len(rows) == OLD + 10  # every image row stays
    assert {i for i, r in rows.items() if r.pruned_at is not None} == expected_pruned
    assert all(rows[i].thumbnail is None and rows[i].status == "ok" and rows[i].brightness is not None
               for i in expected_pruned)
    assert report.rows["heatmaps"] == len(expected_pruned)
    started, finished, detail = last_run(engine)  # type: ignore[misc]
    assert finished is not None and detail["images"] == len(expected_pruned)
    # a second run finds nothing; the drift index no longer sees pruned images (their results stay)
    assert prune(engine, options, now=NOW).images == 0
    assert {r.id for r in processed_index(engine, 1)} == held


def test_a_pruned_image_is_never_registered_again(engine: Engine) -> None:
    _seed(engine)
    prune(engine, PruneOptions(older_than=dt.timedelta(days=90), pause_seconds=0), now=NOW)
    again = FileFound(uri="/data/cam-2/img_00010.jpg", sha256=f"{10:064x}", size_bytes=1000, mtime_ns=99,
                      source="feed", captured_at=T0)
    with session_scope(engine, write=True) as session:
        outcome = register_files(session, [again])
    assert outcome == [RegisterOutcome.DUPLICATE]  # the bytes are known: no new image, no second processing
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Image).where(Image.status == "pending")).scalar_one() == 0


def test_pending_and_processing_images_are_never_pruned(engine: Engine) -> None:
    _seed(engine)
    with write_transaction(engine) as conn:
        conn.execute(update(Image).where(Image.id.in_([10, 11])).values(status="pending"))
    prune(engine, PruneOptions(older_than=dt.timedelta(days=90), pause_seconds=0), now=NOW)
    assert {10, 11} <= _ids(engine, Heatmap)


@pytest.mark.parametrize("text, expected", [("90d", dt.timedelta(days=90)), ("12h", dt.timedelta(hours=12)),
                                            ("2w", dt.timedelta(weeks=2)), ("1.5D", dt.timedelta(hours=36))])
def test_parse_age(text: str, expected: dt.timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["90", "d", "-3d", "0d", "10y", "abc"])
def test_parse_age_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="expected a positive number and a unit"):
        parse_age(text)


def test_one_worker_takes_a_daily_run(engine: Engine) -> None:
    day = dt.timedelta(hours=24)
    assert try_begin(engine, "w1", day, now=NOW)
    assert not try_begin(engine, "w2", day, now=NOW + dt.timedelta(minutes=1))  # w1 is running
    assert try_begin(engine, "w2", day, now=NOW + dt.timedelta(hours=7))  # w1 never finished: stale
    prune(engine, PruneOptions(older_than=day, pause_seconds=0), now=NOW + dt.timedelta(hours=7))
    assert not try_begin(engine, "w1", day, now=NOW + dt.timedelta(hours=20))  # finished less than a day ago
    assert try_begin(engine, "w1", day, now=NOW + dt.timedelta(hours=32))


def test_writers_commit_between_prune_transactions(tmp_path: Path) -> None:
    """A worker committing while prune runs is never shut out for the prune's duration: its transactions
    interleave with prune's (each prune transaction holds the write lock for one small batch)."""
    with migrated_engine("sqlite", tmp_path) as engine:
        seed_images(engine, 400, step=dt.timedelta(seconds=1), thumbnails=False)
        stamps: list[str] = []
        done = threading.Event()

        def writer() -> None:
            while not done.is_set():
                with write_transaction(engine) as conn:
                    conn.execute(update(Image).where(Image.id == 400).values(attempts=Image.attempts + 1))
                stamps.append("w")

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            report = prune(engine, PruneOptions(older_than=dt.timedelta(days=1), batch_size=10, pause_seconds=0.01),
                           now=T0 + dt.timedelta(days=30), stop=lambda: len(stamps) > 10_000)
        finally:
            done.set()
            thread.join(30)
        assert report.batches >= 30 and len(stamps) >= report.batches // 2  # writes went on during the run


def test_sqlite_gives_the_space_back(tmp_path: Path) -> None:
    with migrated_engine("sqlite", tmp_path) as engine:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 2  # incremental, from the start
        seed_images(engine, 300, flag_values=[0.7] * 300, step=dt.timedelta(seconds=1))  # 300 thumbnails
        path = Path(engine.url.database or "")
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
        main_before, before = path.stat().st_size, table_rows(engine)
        report = prune(engine, PruneOptions(older_than=dt.timedelta(days=1), pause_seconds=0),
                       now=T0 + dt.timedelta(days=30))
        with engine.connect() as conn:
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        assert before["thumbnails"] == 300 and table_rows(engine)["thumbnails"] == 0
        assert free == 0 and "incremental vacuum" in report.vacuum
        # prune ends with a checkpoint, so the WAL is empty again and the file itself shrank
        assert report.bytes_after == path.stat().st_size < main_before / 2
        # rows that held a thumbnail keep their (now almost empty) b-tree page until one full VACUUM
        full = prune(engine, PruneOptions(older_than=dt.timedelta(days=1), pause_seconds=0, full_vacuum=True),
                     now=T0 + dt.timedelta(days=30))
        assert full.images == 0 and "full VACUUM" in full.vacuum
        assert path.stat().st_size < report.bytes_after / 2
