"""Registration of queue events, and what the queue sources ask the database afterwards.

An event is registered as a sighting whose uri is ``event:<event id>`` (unique), so an event id is
registered once whatever the broker does:

- ``NEW``: the event's bytes were never seen: a 'pending' image row (uri = the file the pipeline decodes,
  capture time = the event's time, else the time it was received; label, tags and the deployed model's
  prediction from the event) and its sighting are created;
- ``DUPLICATE``: the bytes are known (from another event, a folder, or an earlier event of the batch): only a
  sighting with ``is_duplicate`` is recorded;
- ``REDELIVERED``: the event id is known (a redelivery after a crash between commit and acknowledgement, or a
  producer sending twice): a duplicate sighting ``event:<id>@<delivery>`` is recorded, pointing to the image
  of the first; nothing is processed again.

Race-safe like :mod:`db.registry`: every insert is ``ON CONFLICT DO NOTHING`` on a unique key; a
registration that loses the race for an event id removes the image row it created in the same transaction
(invisible to anyone else until then) and becomes ``REDELIVERED``.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from db.models import Flag, Image, Sighting
from db.session import dialect_insert, require_write_session
from db.types import utcnow

log = logging.getLogger(__name__)

_CHUNK = 400  # events per statement group: well under SQLite's bound-parameter limit
_SETTLED = ("ok", "error")


class EventOutcome(enum.StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    REDELIVERED = "redelivered"


@dataclass(frozen=True)
class EventFound:
    """A received event whose image is on disk: ``uri`` is the file to decode (spooled or ``file://``)."""

    event_id: str
    delivery: str  # the broker's id of this delivery ('redis:<entry id>', 'mqtt:<token>')
    uri: str
    sha256: str
    size_bytes: int
    mtime_ns: int
    source: str  # the camwatch source name
    captured_at: dt.datetime
    meta: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    deployed_class_index: int | None = None
    deployed_score: float | None = None


@dataclass(frozen=True)
class EventRegistered:
    outcome: EventOutcome
    image_id: int


def event_key(event_id: str) -> str:
    """The sighting uri of an event id."""
    return f"event:{event_id}"


def register_events(session: Session, events: Sequence[EventFound], *,
                    seen_at: dt.datetime | None = None) -> list[EventRegistered]:
    """Register received events (module docstring); one result per event, in order. On SQLite the session
    must come from ``session_scope(engine, write=True)``."""
    require_write_session(session, "register_events")
    conn = session.connection()
    out: list[EventRegistered] = []
    for start in range(0, len(events), _CHUNK):
        out += _register_chunk(conn, events[start:start + _CHUNK], seen_at or utcnow())
    return out


def _sighting(e: EventFound, image_id: int, uri: str, seen: dt.datetime, duplicate: bool) -> dict[str, Any]:
    return {"image_id": image_id, "uri": uri, "source": e.source, "size_bytes": e.size_bytes, "mtime_ns": e.mtime_ns,
            "seen_at": seen, "is_duplicate": duplicate, "event_id": e.event_id, "event_meta": e.meta}


def _register_chunk(conn: Connection, events: Sequence[EventFound], seen: dt.datetime) -> list[EventRegistered]:
    dialect = conn.dialect.name
    known = dict(conn.execute(select(Sighting.uri, Sighting.image_id).where(
        Sighting.uri.in_({event_key(e.event_id) for e in events}))).all())
    first: dict[str, int] = {}  # event id -> position of its first, unknown occurrence
    for i, e in enumerate(events):
        if event_key(e.event_id) not in known:
            first.setdefault(e.event_id, i)
    creators: dict[str, int] = {}  # sha256 -> position of the first new event with these bytes
    for i in first.values():
        creators.setdefault(events[i].sha256, i)
    created: dict[str, int] = {}
    if creators:
        rows = [{"sha256": e.sha256, "uri": e.uri, "source": e.source, "size_bytes": e.size_bytes,
                 "captured_at": e.captured_at, "first_seen_at": seen, "status": "pending", "attempts": 0,
                 "label": e.label, "tags": e.tags or None, "deployed_class_index": e.deployed_class_index,
                 "deployed_score": e.deployed_score}
                for e in sorted((events[i] for i in creators.values()), key=lambda e: e.sha256)]
        created = dict(conn.execute(dialect_insert(dialect, Image).on_conflict_do_nothing(index_elements=["sha256"])
                                    .returning(Image.sha256, Image.id), rows).all())
    ids = dict(created)
    missing = [sha for sha in creators if sha not in created]
    if missing:
        ids.update(conn.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(missing))).all())
    made_by = {sha: events[i].event_id for sha, i in creators.items() if sha in created}
    won: set[str] = set()
    if first:
        rows = sorted((_sighting(events[i], ids[events[i].sha256], event_key(events[i].event_id), seen,
                                 made_by.get(events[i].sha256) != events[i].event_id) for i in first.values()),
                      key=lambda row: str(row["uri"]))  # one lock order for every registrant
        won = set(conn.execute(dialect_insert(dialect, Sighting).on_conflict_do_nothing(index_elements=["uri"])
                               .returning(Sighting.uri), rows).scalars())
    lost = [e for e, i in first.items() if event_key(e) not in won]
    if lost:  # another registrant recorded these ids first: drop images made for them, follow the winner
        orphans = [created[events[first[e]].sha256] for e in lost if made_by.get(events[first[e]].sha256) == e]
        if orphans:
            conn.execute(delete(Image).where(Image.id.in_(orphans), ~exists().where(Sighting.image_id == Image.id)))
        known.update(conn.execute(select(Sighting.uri, Sighting.image_id).where(
            Sighting.uri.in_([event_key(e) for e in lost]))).all())
    results: list[EventRegistered] = []
    redelivered: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        key = event_key(e.event_id)
        if first.get(e.event_id) == i and key in won:
            new = made_by.get(e.sha256) == e.event_id
            results.append(EventRegistered(EventOutcome.NEW if new else EventOutcome.DUPLICATE, ids[e.sha256]))
            continue
        image_id = known.get(key)
        if image_id is None:  # a later copy of an id first seen in this batch
            image_id = ids[events[first[e.event_id]].sha256]
        redelivered.append(_sighting(e, image_id, f"{key}@{e.delivery}", seen, True))
        results.append(EventRegistered(EventOutcome.REDELIVERED, image_id))
    if redelivered:
        conn.execute(dialect_insert(dialect, Sighting).on_conflict_do_nothing(index_elements=["uri"]), redelivered)
    return results


def settled_images(engine: Engine, ids: Sequence[int]) -> dict[int, bool]:
    """Of ``ids``, the images whose result is committed ('ok' or 'error'), each with whether it was flagged.

    An id missing from the database (deleted) counts as settled, not flagged: nothing will ever commit it.
    """
    wanted = sorted(set(ids))
    out: dict[int, bool] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            rows = conn.execute(select(Image.id, Image.status, exists().where(Flag.image_id == Image.id))
                                .where(Image.id.in_(chunk))).all()
            present = {r[0] for r in rows}
            out.update({int(r[0]): bool(r[2]) for r in rows if r[1] in _SETTLED})
            out.update({i: False for i in chunk if i not in present})
    return out


def event_metadata(engine: Engine, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """``{image id: event_meta}`` of the images among ``ids`` first seen as a queue event (their first
    sighting is an event's); images first seen in a folder keep their sidecars."""
    wanted = sorted(set(ids))
    out: dict[int, dict[str, Any]] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            rows = conn.execute(select(Sighting.image_id, Sighting.event_id, Sighting.event_meta)
                                .where(Sighting.image_id.in_(wanted[start:start + _CHUNK]))
                                .order_by(Sighting.image_id, Sighting.is_duplicate, Sighting.id))
            first: dict[int, tuple[str | None, dict[str, Any] | None]] = {}
            for image_id, event_id, meta in rows:
                first.setdefault(int(image_id), (event_id, meta))
            out.update({i: meta or {} for i, (event_id, meta) in first.items() if event_id is not None})
    return out
