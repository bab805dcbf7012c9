"""Alembic environment for camwatch.

Applications run migrations through :func:`db.migrate.upgrade`, which passes an open connection (already
inside a locked transaction) in ``config.attributes["connection"]``. The Alembic CLI works too, with the
database given as ``-x url=...`` (see ``db/alembic.ini``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from db.models import Base
from db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
        # db.session makes SQLite DDL transactional (SQLAlchemy emits BEGIN itself).
        transactional_ddl=True,
    )


def _cli_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database given: pass -x url=sqlite:///path.db (or postgresql+psycopg://...)")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_cli_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():  # a no-op inside the caller's transaction
            context.run_migrations()
        return
    engine = make_engine(_cli_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
