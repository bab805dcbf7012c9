"""Registration of queue events (new, duplicate bytes, redelivered ids, races between registrants), what the
sources ask afterwards (settled images, event metadata), and the queue state of the Health page."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, delete, func, insert, select, update

from db.events import EventFound, EventOutcome, event_metadata, register_events, settled_images
from db.models import Flag, Image, ModelVersion, Sighting
from db.queue_status import QueueReport, backlog_summary, queue_backlog, write_queue_status
from db.registry import register_file
from db.session import session_scope, write_transaction
from tests.support.databases import migrated_engine

T0 = dt.datetime(2026, 11, 30, 8, 15, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def _event(event_id: str, sha: str, delivery: str = "1-0", **kw: object) -> EventFound:
    fields: dict = {"uri": f"/spool/{sha[:8]}.png", "size_bytes": 10, "mtime_ns": 0, "source": "redis:s",
                    "captured_at": T0, "meta": {"id": event_id, "tags": {"site": "n"}}, **kw}
    return EventFound(event_id=event_id, delivery=delivery, sha256=sha, **fields)


def _register(engine: Engine, *events: EventFound) -> list[tuple[EventOutcome, int]]:
    with session_scope(engine, write=True) as s:
        return [(r.outcome, r.image_id) for r in register_events(s, list(events))]


def _sightings(engine: Engine) -> list[tuple[str, int, bool, str | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(Sighting.uri, Sighting.image_id, Sighting.is_duplicate,
                                                      Sighting.event_id).order_by(Sighting.id))]  # type: ignore[misc]


def test_new_event_creates_a_pending_image_with_what_the_event_carried(engine: Engine) -> None:
    ((outcome, image_id),) = _register(engine, _event("e1", "a" * 64, label="tabby", tags={"site": "n"},
                                                      deployed_class_index=281, deployed_score=0.82))
    assert outcome is EventOutcome.NEW
    with engine.connect() as conn:
        image = conn.execute(select(Image).where(Image.id == image_id)).one()
        meta = conn.execute(select(Sighting.event_meta)).scalar_one()
    assert (image.uri, image.status, image.attempts, image.source, image.captured_at) == (
        "/spool/aaaaaaaa.png", "pending", 0, "redis:s", T0)
    assert (image.label, image.tags, image.deployed_class_index, image.deployed_score) == (
        "tabby", {"site": "n"}, 281, 0.82)
    assert meta == {"id": "e1", "tags": {"site": "n"}}
    assert _sightings(engine) == [("event:e1", image_id, False, "e1")]


def test_duplicate_bytes_and_redelivered_ids_become_sightings_only(engine: Engine) -> None:
    [(_, first)] = _register(engine, _event("e1", "a" * 64))
    with session_scope(engine, write=True) as s:  # the same bytes seen earlier in a folder
        register_file(s, uri="/feed/b.jpg", sha256="b" * 64, size_bytes=1, mtime_ns=1, source="feed", captured_at=T0)
    results = _register(engine, _event("e2", "a" * 64, "2-0"),  # other id, same bytes as e1
                        _event("e1", "c" * 64, "3-0"),  # known id (even with other bytes): a redelivery
                        _event("e3", "b" * 64, "4-0"),  # bytes known from the folder
                        _event("e4", "d" * 64, "5-0"), _event("e4", "d" * 64, "6-0"))  # one id twice in a batch
    with engine.connect() as conn:
        folder_image = conn.execute(select(Image.id).where(Image.sha256 == "b" * 64)).scalar_one()
        new_image = conn.execute(select(Image.id).where(Image.sha256 == "d" * 64)).scalar_one()
        images = conn.execute(select(func.count()).select_from(Image)).scalar_one()
    assert results == [(EventOutcome.DUPLICATE, first), (EventOutcome.REDELIVERED, first),
                       (EventOutcome.DUPLICATE, folder_image), (EventOutcome.NEW, new_image),
                       (EventOutcome.REDELIVERED, new_image)]
    assert images == 3  # a, b (folder), d: the redelivered e1's other bytes made no image
    assert _sightings(engine)[2:] == [("event:e2", first, True, "e2"), ("event:e3", folder_image, True, "e3"),
                                      ("event:e4", new_image, False, "e4"),
                                      ("event:e1@3-0", first, True, "e1"), ("event:e4@6-0", new_image, True, "e4")]
    assert _register(engine, _event("e1", "a" * 64, "3-0")) == [(EventOutcome.REDELIVERED, first)]  # idempotent
    assert len(_sightings(engine)) == 7


def test_two_registrants_of_the_same_ids_with_other_bytes_leave_one_image_per_id(engine: Engine) -> None:
    """The second transaction waits for the first one's sightings (PostgreSQL: the unique index; SQLite: the
    write lock), loses, removes the images it made and follows the winner."""
    events_a = [_event(f"e{i}", f"{i:x}".rjust(64, "a")) for i in range(20)]
    events_b = [_event(f"e{i}", f"{i:x}".rjust(64, "b"), "9-0") for i in range(20)]
    first_done = threading.Event()
    second: list[tuple[EventOutcome, int]] = []

    def register_b() -> None:
        first_done.wait(10)
        second.extend(_register(engine, *events_b))

    thread = threading.Thread(target=register_b)
    with session_scope(engine, write=True) as s:
        won = [(r.outcome, r.image_id) for r in register_events(s, events_a)]
        thread.start()
        first_done.set()
        thread.join(0.5)  # the second registrant blocks on our uncommitted rows
        assert thread.is_alive()
    thread.join(30)
    assert [o for o, _ in won] == [EventOutcome.NEW] * 20
    assert second == [(EventOutcome.REDELIVERED, image_id) for _, image_id in won]
    with engine.connect() as conn:
        shas = set(conn.execute(select(Image.sha256)).scalars())
    assert shas == {e.sha256 for e in events_a}


def test_a_known_id_makes_no_image_and_the_next_new_id_with_those_bytes_does(engine: Engine) -> None:
    with write_transaction(engine) as conn:  # an event 'x' registered earlier (by another worker)
        conn.execute(Image.__table__.insert().values(sha256="f" * 64, uri="/w", source="s", size_bytes=1,
                                                     captured_at=T0, status="pending", attempts=0))
        winner = conn.execute(select(Image.id)).scalar_one()
        conn.execute(Sighting.__table__.insert().values(image_id=winner, uri="event:x", source="s", size_bytes=1,
                                                        mtime_ns=0, seen_at=T0, is_duplicate=False, event_id="x"))
    assert _register(engine, _event("x", "e" * 64, "2-0"), _event("y", "e" * 64, "3-0")) == [
        (EventOutcome.REDELIVERED, winner), (EventOutcome.NEW, winner + 1)]


def test_settled_images_and_their_flags(engine: Engine) -> None:
    ids = [i for _, i in _register(engine, *(_event(f"e{i}", f"{i}" * 64) for i in range(1, 5)))]
    with write_transaction(engine) as conn:
        conn.execute(update(Image).where(Image.id == ids[0]).values(status="ok"))
        conn.execute(update(Image).where(Image.id == ids[1]).values(status="error", error="bad"))
        conn.execute(update(Image).where(Image.id == ids[2]).values(status="processing"))
        mv = conn.execute(insert(ModelVersion).values(
            fingerprint="f" * 64, spec="tiny", num_classes=2, class_names=["a", "b"], input_size=[8, 8],
            preprocessing={}, target_layer="l", method="gradcam").returning(ModelVersion.id)).scalar_one()
        conn.execute(Flag.__table__.insert().values(image_id=ids[0], model_version_id=mv, rule="energy_outside",
                                                    value=0.9, threshold=0.5, created_at=T0))
    assert settled_images(engine, ids) == {ids[0]: True, ids[1]: False}
    with write_transaction(engine) as conn:
        conn.execute(delete(Image).where(Image.id == ids[3]))
    assert settled_images(engine, [ids[3]]) == {ids[3]: False}  # deleted: nothing will ever commit it


def test_event_metadata_only_for_images_first_seen_as_events(engine: Engine) -> None:
    [(_, from_event)] = _register(engine, _event("e1", "a" * 64, meta={"label": "cat"}))
    with session_scope(engine, write=True) as s:
        register_file(s, uri="/feed/b.jpg", sha256="b" * 64, size_bytes=1, mtime_ns=1, source="feed", captured_at=T0)
    [(_, from_folder)] = _register(engine, _event("e2", "b" * 64, meta={"label": "dog"}))
    assert event_metadata(engine, [from_event, from_folder, 999]) == {from_event: {"label": "cat"}}


def _report(consumer: str, **kw: object) -> QueueReport:
    fields: dict = {"source": "redis:s", "consumer": consumer, "worker_id": "w", "kind": "redis",
                    "location": "redis://h/0?stream=s", "state": "connected", "lag": 5, "pending": 3,
                    "in_flight": 2, "max_in_flight": 64, "dead_letters": 1, "received": 10, "acknowledged": 8,
                    "dead_lettered": 1, "duplicates": 0, **kw}
    return QueueReport(**fields)


def test_queue_status_is_upserted_and_summarised_per_source(engine: Engine) -> None:
    write_queue_status(engine, _report("h-0", lag=50))
    write_queue_status(engine, _report("h-1", in_flight=4))  # newer report of the group: lag 5, pending 3
    write_queue_status(engine, _report("h-0", lag=5, state="stopped", in_flight=0))
    write_queue_status(engine, _report("m-0", source="mqtt:t/#", kind="mqtt", lag=None, pending=7, in_flight=7,
                                       dead_letters=None))
    write_queue_status(engine, _report("m-1", source="mqtt:t/#", kind="mqtt", lag=None, pending=2, in_flight=2,
                                       dead_letters=None))
    rows = queue_backlog(engine)
    assert len(rows) == 4 and set(rows["consumer"]) == {"h-0", "h-1", "m-0", "m-1"}
    summary = backlog_summary(engine).set_index("source")
    assert summary.loc["redis:s", ["consumers", "backlog", "lag", "pending", "in_flight", "dead_letters"]].tolist() == [
        1, 8, 5, 3, 4, 1]
    mqtt = summary.loc["mqtt:t/#"]
    assert (mqtt["consumers"], mqtt["pending"], mqtt["in_flight"]) == (2, 9, 9)
    assert pd.isna(mqtt["backlog"])  # unknown: MQTT brokers report no lag
    with pytest.raises(ValueError, match="state must be one of"):
        write_queue_status(engine, _report("x", state="sleeping"))
