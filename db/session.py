"""Engines, sessions and transactions for SQLite (default) and PostgreSQL.

SQLite: each new connection gets ``busy_timeout`` (30 s by default: a second writer waits instead of failing),
``auto_vacuum = INCREMENTAL`` (takes effect on a new file, before WAL writes its header: retention can
then give freed pages back with ``PRAGMA incremental_vacuum``, see :mod:`db.prune`; an older database
keeps its mode until one full ``VACUUM``), ``journal_mode = WAL`` (a long dashboard read does not block
the worker's commits), ``foreign_keys = ON``
and ``synchronous = NORMAL`` (safe with WAL; a power cut may lose the last commits, never corrupt).
The sqlite3 driver's own transaction handling is switched off (``isolation_level = None``) and
SQLAlchemy emits ``BEGIN`` itself -- the documented recipe for real transactions on pysqlite -- so a
*write* transaction can start with ``BEGIN IMMEDIATE``: it takes the write lock at once, whereas a
deferred transaction that reads and then writes fails immediately with ``SQLITE_BUSY_SNAPSHOT`` when
another connection committed in between (busy_timeout does not help there).

PostgreSQL: ``postgresql+psycopg://`` (a bare ``postgresql://`` is mapped to psycopg 3), pre-pinged
pooled connections; concurrency is handled with row locks (``FOR UPDATE SKIP LOCKED``) and
``INSERT ... ON CONFLICT``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Session

log = logging.getLogger(__name__)

SUPPORTED_DIALECTS = ("sqlite", "postgresql")
_BEGIN_OPTION = "camwatch_sqlite_begin"
DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
_SQLITE_PRAGMAS = (
    # busy_timeout first (set apart, per engine): switching a fresh file to WAL needs a lock another
    # process may hold. auto_vacuum before WAL: only a file without a header yet takes it at once.
    "PRAGMA auto_vacuum = INCREMENTAL",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
)


#: Read-side setting for SQLite connections of readers (the dashboard): memory-map up to 1 GiB of the
#: database file, so page reads are memory accesses instead of read() system calls through SQLite's 2 MB
#: page cache (measured on a 1M-image database: 7-day aggregates about twice as fast). Safe with WAL.
SQLITE_READER_MMAP_BYTES = 1 << 30


def make_engine(url: str, *, reader: bool = False,
                busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL, configured as described in the module docstring.

    PostgreSQL and SQLite files get a thread-safe queue pool (5 connections + 10 overflow) for the threaded
    dashboard. ``reader`` (the dashboard) also memory-maps SQLite files (:data:`SQLITE_READER_MMAP_BYTES`).
    ``busy_timeout_seconds``: how long a SQLite statement waits for another process's lock before failing
    with "database is locked" (the worker then retries, :mod:`db.faults`).
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_DIALECTS:
        raise ValueError(f"database URL {parsed.render_as_string(hide_password=True)!r}: unsupported "
                         f"backend {backend!r} (camwatch supports {', '.join(SUPPORTED_DIALECTS)})")
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_recycle=1800)

    database = parsed.database
    pool_args: dict[str, Any] = {}
    if database and database != ":memory:" and not database.startswith("file:"):  # a plain file path
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise FileNotFoundError(f"SQLite database {database}: directory {parent} does not exist")
        pool_args = {"pool_size": 5, "max_overflow": 10}
    # In-memory and URI databases keep SQLAlchemy's own pool choice (one connection per thread for :memory:).
    engine = create_engine(parsed, **pool_args)
    busy_ms = max(0, int(busy_timeout_seconds * 1000))

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        _sqlite_on_connect(dbapi_connection, connection_record, busy_ms)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    if reader:
        event.listen(engine, "connect", _sqlite_reader_pragmas)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any, busy_ms: int) -> None:
    dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own; _sqlite_on_begin does
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms:d}")  # an int, no user input
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _sqlite_reader_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA mmap_size = {SQLITE_READER_MMAP_BYTES:d}")  # an int constant, no user input
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_BEGIN_OPTION) == "IMMEDIATE":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _writer(engine: Engine) -> Engine:
    """The engine whose transactions start with ``BEGIN IMMEDIATE`` on SQLite (same pool)."""
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session committed on success, rolled back on error, closed in both cases.

    ``write=True`` declares that the transaction will write after reading: on SQLite it then starts with
    ``BEGIN IMMEDIATE`` (waiting up to busy_timeout for other writers). Keep it off for dashboard reads so
    they never block the worker. Objects stay usable after the commit (``expire_on_commit=False``).
    """
    session = Session(bind=_writer(engine) if write else engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A Core connection inside one write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    with _writer(engine).begin() as conn:
        yield conn


def require_write_session(session: Session, operation: str) -> None:
    """Refuse, on SQLite, a session that was not opened with ``session_scope(engine, write=True)``.

    ``operation`` names the caller in the error. PostgreSQL needs no such session.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite" and connection.get_execution_options().get(_BEGIN_OPTION) != "IMMEDIATE":
        raise RuntimeError(f"{operation} reads then writes: on SQLite call it in a session from "
                           "session_scope(engine, write=True), otherwise a concurrent commit makes it fail "
                           "with SQLITE_BUSY_SNAPSHOT")


def dialect_insert(dialect_name: str, entity: type[DeclarativeBase]) -> postgresql.Insert | sqlite.Insert:
    """The dialect's own ``INSERT`` construct for a mapped class, which supports ``on_conflict_do_*``."""
    if dialect_name == "postgresql":
        return postgresql.insert(entity)
    if dialect_name == "sqlite":
        return sqlite.insert(entity)
    raise ValueError(f"unsupported database dialect {dialect_name!r} (camwatch supports "
                     f"{', '.join(SUPPORTED_DIALECTS)})")
