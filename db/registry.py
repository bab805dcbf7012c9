"""Registration of files found by the folder scanner.

An image row stands for distinct *bytes* (unique sha256); a sighting stands for a *uri* (unique).
Every write is an ``INSERT ... ON CONFLICT`` on those unique keys, so two scanners registering the
same file at once cannot create two rows: the loser's insert does nothing and it reads the winner's.
A batch of files costs a fixed handful of statements (one lookup of the uris, one multi-row insert of
images, one lookup of bytes already known, one multi-row upsert of sightings), not a few per file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from db.limits import fit_int64
from db.models import Image, Sighting
from db.records import FileFound, RegisterOutcome
from db.session import dialect_insert, require_write_session
from db.types import utcnow

log = logging.getLogger(__name__)

# Rows per statement: well under SQLite's bound-parameter limit (32766) with 8 columns a row.
_CHUNK = 500


def register_file(session: Session, *, uri: str, sha256: str, size_bytes: int, mtime_ns: int, source: str,
                  captured_at: dt.datetime, seen_at: dt.datetime | None = None) -> RegisterOutcome:
    """Register one file; see :func:`register_files`."""
    found = FileFound(uri=uri, sha256=sha256, size_bytes=size_bytes, mtime_ns=mtime_ns, source=source,
                      captured_at=captured_at)
    return register_files(session, [found], seen_at=seen_at)[0]


def register_files(session: Session, files: Sequence[FileFound], *,
                   seen_at: dt.datetime | None = None) -> list[RegisterOutcome]:
    """Record that each stable file ``uri`` holds bytes with digest ``sha256``; one outcome per file, in order.

    - ``NEW``: bytes never seen; a 'pending' image row and a sighting are created.
    - ``DUPLICATE``: the bytes are known under another uri (also an earlier file of the same batch); a
      sighting with ``is_duplicate=True`` is recorded, no image row is added.
    - ``KNOWN``: the uri is registered with these bytes already; only its stat cache (size, mtime)
      is refreshed if the file was touched, so :func:`known_uris` stays current.

    A uri whose bytes changed (a file rewritten in place) is re-pointed to the new bytes and reported as
    ``NEW`` or ``DUPLICATE``. A uri listed twice keeps its last entry. On SQLite the session must come
    from ``session_scope(engine, write=True)``.
    """
    require_write_session(session, "register_files")
    conn = session.connection()  # Core statements: multi-row VALUES and executemany, no ORM bookkeeping
    outcomes: list[RegisterOutcome] = []
    for start in range(0, len(files), _CHUNK):
        outcomes += _register_chunk(conn, files[start:start + _CHUNK], seen_at or utcnow())
    return outcomes


def _register_chunk(conn: Connection, given: Sequence[FileFound], seen: dt.datetime) -> list[RegisterOutcome]:
    # sizes and mtimes fitted to BIGINT (an mtime in the year 3000 does not fit in nanoseconds)
    files = [f if (fit_int64(f.mtime_ns), fit_int64(f.size_bytes)) == (f.mtime_ns, f.size_bytes) else
             dataclasses.replace(f, mtime_ns=fit_int64(f.mtime_ns), size_bytes=fit_int64(f.size_bytes))
             for f in given]
    latest = {f.uri: f for f in files}  # a uri listed twice: its last entry wins
    current = {row.uri: row for row in conn.execute(
        select(Sighting.id, Sighting.uri, Sighting.size_bytes, Sighting.mtime_ns, Image.sha256)
        .join(Image, Image.id == Sighting.image_id)
        .where(Sighting.uri.in_(list(latest))))}
    result: dict[str, RegisterOutcome] = {}
    touched: list[dict[str, int]] = []
    todo: list[FileFound] = []
    for f in latest.values():
        row = current.get(f.uri)
        if row is not None and row.sha256 == f.sha256:
            result[f.uri] = RegisterOutcome.KNOWN
            if (row.size_bytes, row.mtime_ns) != (f.size_bytes, f.mtime_ns):
                touched.append({"b_id": row.id, "b_size": f.size_bytes, "b_mtime": f.mtime_ns})
        else:
            todo.append(f)
    if touched:
        conn.execute(update(Sighting).where(Sighting.id == bindparam("b_id"))
                        .values(size_bytes=bindparam("b_size"), mtime_ns=bindparam("b_mtime")), touched)
    if todo:
        result.update(_register_new(conn, todo, current, seen))
    return [result[f.uri] if latest[f.uri] is f else RegisterOutcome.KNOWN for f in files]


def _register_new(conn: Connection, todo: Sequence[FileFound], current: dict[str, Row], seen: dt.datetime,
                  ) -> dict[str, RegisterOutcome]:
    """Image rows for bytes never seen, then the sightings of every file in ``todo``."""
    dialect = conn.dialect.name
    first_of: dict[str, FileFound] = {}
    for f in todo:
        first_of.setdefault(f.sha256, f)
    # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" batches the rows into few statements
    # from one cached compilation (a multi-row .values() recompiles every call: 0.7 ms a file).
    created = dict(conn.execute(  # sha256 -> id of the rows this statement created
        dialect_insert(dialect, Image).on_conflict_do_nothing(index_elements=["sha256"])
        .returning(Image.sha256, Image.id),
        [{"sha256": f.sha256, "uri": f.uri, "source": f.source, "size_bytes": f.size_bytes,
          "captured_at": f.captured_at, "first_seen_at": seen, "status": "pending", "attempts": 0}
         for f in sorted(first_of.values(), key=lambda f: f.sha256)]).all())  # one lock order for all
    ids = dict(created)
    known = [sha for sha in first_of if sha not in created]
    if known:
        ids.update(conn.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(known))).all())
    new_uris = {first_of[sha].uri for sha in created}
    stmt = dialect_insert(dialect, Sighting)
    # On a uri conflict, re-point the sighting only if it names other bytes; no row back = already ours.
    changed = set(conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["uri"],
            set_={"image_id": stmt.excluded.image_id, "source": stmt.excluded.source,
                  "size_bytes": stmt.excluded.size_bytes, "mtime_ns": stmt.excluded.mtime_ns,
                  "seen_at": stmt.excluded.seen_at, "is_duplicate": stmt.excluded.is_duplicate},
            where=Sighting.image_id != stmt.excluded.image_id,
        ).returning(Sighting.uri),
        [{"image_id": ids[f.sha256], "uri": f.uri, "source": f.source, "size_bytes": f.size_bytes,
          "mtime_ns": f.mtime_ns, "seen_at": seen, "is_duplicate": f.uri not in new_uris}
         for f in sorted(todo, key=lambda f: f.uri)]).scalars())
    outcomes: dict[str, RegisterOutcome] = {}
    for f in todo:
        if f.uri not in changed:  # a concurrent scanner registered this uri with these bytes first
            outcomes[f.uri] = RegisterOutcome.KNOWN
            continue
        if f.uri in current:
            log.info("%s: content changed (sha256 %s), now image %d", f.uri, f.sha256, ids[f.sha256])
        outcomes[f.uri] = RegisterOutcome.NEW if f.uri in new_uris else RegisterOutcome.DUPLICATE
    return outcomes


def known_uris(session: Session, source: str) -> dict[str, tuple[int, int]]:
    """``{uri: (size_bytes, mtime_ns)}`` of every uri registered for ``source``.

    A scanner restarting can skip re-hashing files whose size and mtime are unchanged.
    """
    rows = session.execute(
        select(Sighting.uri, Sighting.size_bytes, Sighting.mtime_ns).where(Sighting.source == source))
    return {row.uri: (row.size_bytes, row.mtime_ns) for row in rows}
