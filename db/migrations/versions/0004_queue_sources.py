"""Queue sources: events as sightings (event id, event metadata), the deployed model's prediction, and the
state of each queue source for the Health page.

Revision ID: 0004_queue_sources
Revises: 0003_hardening
Create Date: 2026-12-01

``sightings.event_id`` / ``event_meta``: a queue event is a sighting whose uri is ``event:<id>`` (unique,
so an event id is registered once); ``event_meta`` keeps what the event carried. ``images.deployed_*``:
the deployed model's own prediction when the event carried one. ``queue_status``: one row per queue
source and consumer, refreshed by the worker (backlog, in-flight events, dead letters).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_queue_sources"
down_revision: str | Sequence[str] | None = "0003_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the vocabulary at this revision (a migration must not change when models.py does).
QUEUE_STATES = ("connected", "disconnected", "stopped")


def upgrade() -> None:
    with op.batch_alter_table("sightings") as batch:
        batch.add_column(sa.Column("event_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("event_meta", sa.JSON(), nullable=True))
    op.create_index("ix_sightings_event_id", "sightings", ["event_id"])
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("deployed_class_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("deployed_score", sa.Float(), nullable=True))
    op.create_table(
        "queue_status",
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lag", sa.BigInteger(), nullable=True),
        sa.Column("pending", sa.BigInteger(), nullable=True),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("max_in_flight", sa.Integer(), nullable=False),
        sa.Column("dead_letters", sa.BigInteger(), nullable=True),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("acknowledged", sa.BigInteger(), nullable=False),
        sa.Column("dead_lettered", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "consumer", name="pk_queue_status"),
        sa.CheckConstraint(sa.column("state").in_(QUEUE_STATES), name="ck_queue_status_state"),
    )


def downgrade() -> None:
    op.drop_table("queue_status")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("deployed_score")
        batch.drop_column("deployed_class_index")
    op.drop_index("ix_sightings_event_id", table_name="sightings")
    with op.batch_alter_table("sightings") as batch:
        batch.drop_column("event_meta")
        batch.drop_column("event_id")
