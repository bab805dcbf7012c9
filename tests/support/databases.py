"""Test helpers: fresh migrated databases, including throw-away PostgreSQL schemas on the local server.

``CAMWATCH_TEST_POSTGRES_URL`` names the server (default ``postgresql+psycopg://root@127.0.0.1:5432/test``).
Each :func:`postgres_schema` creates a uniquely named schema, yields a URL whose connections use it as
their ``search_path``, and drops it (with everything in it) afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateSchema, DropSchema

from db.migrate import upgrade
from db.session import make_engine

DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"


class PostgresUnavailable(RuntimeError):
    """The test PostgreSQL server cannot be reached."""


def postgres_test_url() -> str:
    """The test server's URL (environment variable or default)."""
    return os.environ.get("CAMWATCH_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)


@contextmanager
def postgres_schema(base_url: str | None = None) -> Iterator[str]:
    """Create schema ``camwatch_test_<random>``; yield a URL bound to it; drop it on exit."""
    url = make_url(base_url or postgres_test_url())
    name = "camwatch_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(url, pool_pre_ping=True)  # survives a server restart during the test
    try:
        with admin.begin() as conn:
            conn.execute(CreateSchema(name))
    except OperationalError as exc:
        admin.dispose()
        raise PostgresUnavailable(
            f"PostgreSQL test server {url.render_as_string(hide_password=True)} is unreachable ({exc.orig}); "
            "start it or point CAMWATCH_TEST_POSTGRES_URL at one") from exc
    try:
        # application_name tags this schema's connections, so the cleanup can find leftovers.
        yield url.update_query_dict({"options": "-csearch_path=" + name, "application_name": name}) \
            .render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            # A connection a failed test left inside a transaction would block DROP SCHEMA: end it first.
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = :app"), {"app": name})
            conn.execute(DropSchema(name, cascade=True))
        admin.dispose()


@contextmanager
def migrated_engine(kind: str, directory: Path) -> Iterator[Engine]:
    """An engine on a fresh database at head: ``kind`` 'sqlite' (a file in ``directory``) or 'postgresql'
    (a throw-away schema, see :func:`postgres_schema`). The engine is disposed on exit."""
    if kind == "sqlite":
        with _engine_at_head("sqlite:///" + str(directory / "camwatch.db")) as engine:
            yield engine
    elif kind == "postgresql":
        with postgres_schema() as url, _engine_at_head(url) as engine:
            yield engine
    else:
        raise ValueError(f"unknown database kind {kind!r} (expected 'sqlite' or 'postgresql')")


@contextmanager
def _engine_at_head(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
