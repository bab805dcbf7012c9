"""Schema migrations, run programmatically by the worker and the dashboard at start.

Concurrent starts are safe: the whole upgrade runs in one transaction that first takes an exclusive
lock -- ``BEGIN IMMEDIATE`` on SQLite (DDL is transactional there because :mod:`db.session` emits BEGIN
itself), ``pg_advisory_xact_lock`` on PostgreSQL. A second process waits for the first to commit, then
finds the database at head and does nothing. Within one process runs are also serialised by a thread
lock, because Alembic's command API keeps its running context in module globals.

CLI: ``python -m db.migrate URL [REVISION]`` upgrades URL to REVISION (default ``head``).
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select

from db.session import make_engine, write_transaction

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary 64-bit key of the PostgreSQL advisory lock that serialises migrations ("camwatch" in ASCII).
_PG_MIGRATION_LOCK = 0x63616D7761746368
_ALEMBIC_LOCK = threading.Lock()


def alembic_config() -> Config:
    """An Alembic configuration pointing at ``db/migrations``, without any ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


@contextmanager
def _engine_for(target: str | Engine) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def _run(target: str | Engine, action: str, revision: str) -> None:
    with _ALEMBIC_LOCK, _engine_for(target) as engine, write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        before = MigrationContext.configure(conn).get_current_revision()
        if action == "upgrade":
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database %s: %s from revision %s to %s",
                 engine.url.render_as_string(hide_password=True), action, before, after)


def upgrade(target: str | Engine, revision: str = "head") -> None:
    """Upgrade the database (a URL or an engine) to ``revision``; a no-op when it is already there."""
    _run(target, "upgrade", revision)


def downgrade(target: str | Engine, revision: str) -> None:
    """Downgrade the database to ``revision`` (``"base"`` drops every camwatch table)."""
    _run(target, "downgrade", revision)


def head_revision() -> str:
    """The newest revision in ``db/migrations``."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR / 'versions'}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for a database never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Upgrade a camwatch database schema.")
    parser.add_argument("url", help="database URL, e.g. sqlite:///camwatch.db or postgresql+psycopg://...")
    parser.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    upgrade(args.url, args.revision)


if __name__ == "__main__":
    main()
