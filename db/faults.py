"""Database faults: which errors pass (retried with backoff) and which stop a worker, and a watch on the
SQLite file.

Transient (retried, each retry logged): SQLite "database is locked" / "busy" after ``busy_timeout``; a
connection that was lost or refused (PostgreSQL restarting, a network cut: SQLAlchemy marks the
connection invalidated, psycopg raises ``OperationalError``), SQLSTATE classes 08 (connection), 40001
(serialization failure), 40P01 (deadlock), 57P01-57P03 (administrator shutdown, crash shutdown, cannot
connect now) and 53300 (too many connections), and a pool timeout. Everything else (a full disk, a
damaged file, a constraint) is persistent, and so is a transient error that outlasts the retry budget:
:func:`retry` then raises :class:`DatabaseUnavailable`, whose message says what was being done and why.

A SQLite database file deleted or replaced under a running process would let SQLite go on writing into
the unlinked inode (every result lost at exit) or read another database. :class:`SqliteFileWatch`
remembers the file's device and inode when the process starts and :meth:`~SqliteFileWatch.check`
raises :class:`DatabaseUnavailable` as soon as they differ.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")
MAX_DELAY_SECONDS = 5.0


class DatabaseUnavailable(RuntimeError):
    """A database fault that retrying did not cure (or cannot): the worker stops with this message."""


def _sqlstate(error: BaseException | None) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return str(state) if state else None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error worth retrying (see the module docstring)."""
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no free connection in time
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    state = _sqlstate(orig)
    if state is not None:
        return state in TRANSIENT_SQLSTATES or state.startswith("08")
    if isinstance(orig, sqlite3.OperationalError):
        return any(text in str(orig).lower() for text in _SQLITE_TRANSIENT)
    # psycopg raises OperationalError without a SQLSTATE when the server cannot be reached at all
    return isinstance(exc, sa_exc.OperationalError) and type(orig).__module__.startswith("psycopg")


def describe(exc: BaseException) -> str:
    """One line naming the error (the driver's class and first message line; no SQL, no parameters)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0][:200]
    state = _sqlstate(orig)
    return f"{type(orig).__name__}{f' {state}' if state else ''}: {first}" if first else type(orig).__name__


def retry(fn: Callable[[], T], *, what: str, budget_seconds: float, first_delay: float = 0.1,
          sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()``, retried with exponential backoff (``first_delay`` doubling up to 5 s) while it raises a
    transient error, for at most ``budget_seconds``; then :class:`DatabaseUnavailable`. A persistent error
    is raised as it is (the caller decides: one image's error, or a stop)."""
    deadline = time.monotonic() + budget_seconds
    delay = first_delay
    failures = 0
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            failures += 1
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailable(
                    f"{what}: the database stayed unavailable for {budget_seconds:g} s "
                    f"({failures} tries; last error {describe(exc)})") from exc
            log.warning("%s: transient database error (%s); retry %d in %.1f s", what, describe(exc), failures,
                        delay)
            sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
            continue
        if failures:
            log.info("%s: the database answered again after %d retries", what, failures)
        return result


def guarded(fn: Callable[[], T], *, what: str, budget_seconds: float) -> T:
    """:func:`retry`, with any other database error (persistent) raised as :class:`DatabaseUnavailable`
    naming ``what`` was being done: for steps a worker cannot go on without."""
    try:
        return retry(fn, what=what, budget_seconds=budget_seconds)
    except DatabaseUnavailable:
        raise
    except sa_exc.SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"{what}: {describe(exc)}") from exc


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite engine (None for PostgreSQL, in-memory and URI databases)."""
    url = engine.url
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


class SqliteFileWatch:
    """Notices a SQLite database file deleted or replaced while the process runs (module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.path = sqlite_path(engine)
        self._identity = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        """:class:`DatabaseUnavailable` when the file is gone or another file now has its name."""
        if self.path is None:
            return
        if self._identity is None:  # created after the watch started (a fresh database)
            self._identity = self._stat()
            return
        now = self._stat()
        if now is None:
            raise DatabaseUnavailable(f"SQLite database {self.path} was deleted while the worker ran; "
                                      "stopping (results written after this would be lost)")
        if now != self._identity:
            raise DatabaseUnavailable(f"SQLite database {self.path} was replaced by another file while the "
                                      "worker ran; stopping (it would read and write the wrong database)")
