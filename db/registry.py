"""Registration of files found by the folder scanner.

An image row stands for distinct *bytes* (unique sha256); a sighting stands for a *uri* (unique).
Every write is an ``INSERT ... ON CONFLICT`` on those unique keys, so two scanners registering the
same file at once cannot create two rows: the loser's insert does nothing and it reads the winner's.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Image, Sighting
from db.records import RegisterOutcome
from db.session import dialect_insert, require_write_session
from db.types import utcnow

log = logging.getLogger(__name__)


def register_file(session: Session, *, uri: str, sha256: str, size_bytes: int, mtime_ns: int, source: str,
                  captured_at: dt.datetime, seen_at: dt.datetime | None = None) -> RegisterOutcome:
    """Record that the stable file ``uri`` holds bytes with digest ``sha256``.

    - ``NEW``: bytes never seen; a 'pending' image row and a sighting are created.
    - ``DUPLICATE``: the bytes are known under another uri; a sighting with ``is_duplicate=True`` is
      recorded, no image row is added.
    - ``KNOWN``: the uri is registered with these bytes already; only its stat cache (size, mtime)
      is refreshed if the file was touched, so :func:`known_uris` stays current.

    A uri whose bytes changed (a file rewritten in place) is re-pointed to the new bytes and reported as
    ``NEW`` or ``DUPLICATE``. On SQLite the session must come from ``session_scope(engine, write=True)``.
    """
    require_write_session(session, "register_file")
    seen = seen_at or utcnow()
    current = session.execute(
        select(Sighting.id, Sighting.size_bytes, Sighting.mtime_ns, Image.sha256)
        .join(Image, Image.id == Sighting.image_id)
        .where(Sighting.uri == uri)
    ).one_or_none()
    if current is not None and current.sha256 == sha256:
        if (current.size_bytes, current.mtime_ns) != (size_bytes, mtime_ns):
            session.execute(update(Sighting).where(Sighting.id == current.id)
                            .values(size_bytes=size_bytes, mtime_ns=mtime_ns))
        return RegisterOutcome.KNOWN

    dialect = session.get_bind().dialect.name
    image_id = session.execute(
        dialect_insert(dialect, Image)
        .values(sha256=sha256, uri=uri, source=source, size_bytes=size_bytes, captured_at=captured_at,
                first_seen_at=seen, status="pending", attempts=0)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(Image.id)
    ).scalar_one_or_none()
    created = image_id is not None
    if image_id is None:
        image_id = session.execute(select(Image.id).where(Image.sha256 == sha256)).scalar_one()

    stmt = dialect_insert(dialect, Sighting).values(
        image_id=image_id, uri=uri, source=source, size_bytes=size_bytes, mtime_ns=mtime_ns, seen_at=seen,
        is_duplicate=not created)
    # On a uri conflict, re-point the sighting only if it names other bytes; no row back = already ours.
    changed = session.execute(
        stmt.on_conflict_do_update(
            index_elements=["uri"],
            set_={"image_id": stmt.excluded.image_id, "source": stmt.excluded.source,
                  "size_bytes": stmt.excluded.size_bytes, "mtime_ns": stmt.excluded.mtime_ns,
                  "seen_at": stmt.excluded.seen_at, "is_duplicate": stmt.excluded.is_duplicate},
            where=Sighting.image_id != stmt.excluded.image_id,
        ).returning(Sighting.id)
    ).scalar_one_or_none()
    if changed is None:
        return RegisterOutcome.KNOWN  # a concurrent scanner registered this uri with these bytes first
    if current is not None:
        log.info("%s: content changed (sha256 %s), now image %d", uri, sha256, image_id)
    return RegisterOutcome.NEW if created else RegisterOutcome.DUPLICATE


def known_uris(session: Session, source: str) -> dict[str, tuple[int, int]]:
    """``{uri: (size_bytes, mtime_ns)}`` of every uri registered for ``source``.

    A scanner restarting can skip re-hashing files whose size and mtime are unchanged.
    """
    rows = session.execute(
        select(Sighting.uri, Sighting.size_bytes, Sighting.mtime_ns).where(Sighting.source == source))
    return {row.uri: (row.size_bytes, row.mtime_ns) for row in rows}
