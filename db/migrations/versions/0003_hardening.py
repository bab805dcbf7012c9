"""Production hardening: warnings stored on images, solo attempts for crash isolation, a per-process
instance id on heartbeats, and the audit trail of dashboard changes.

Revision ID: 0003_hardening
Revises: 0002_drift_slices
Create Date: 2026-12-01

- ``images.warnings``: what was ignored or replaced while processing the image (a malformed sidecar, an
  implausible capture time, a truncated label), as a JSON list of strings.
- ``images.solo_attempts``: claims of the image alone; only crashes of such claims count towards giving
  it up, so a crash in a batch costs its innocent images nothing (``db.claims``).
- ``worker_heartbeats.instance_id``: random per process start; claims carry it, so recovery never
  confuses two processes (pids repeat across hosts and pid namespaces).
- ``audit_events``: who reviewed an image or changed the reference, from where, when.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_hardening"
down_revision: str | Sequence[str] | None = "0002_drift_slices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("solo_attempts", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.add_column(sa.Column("instance_id", sa.String(64), nullable=True))
    op.create_index("ix_worker_heartbeats_instance_id", "worker_heartbeats", ["instance_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("client", sa.String(100), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("reference_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE",
                                name="fk_audit_events_image_id_images"),
        sa.ForeignKeyConstraint(["reference_id"], ["references.id"], ondelete="SET NULL",
                                name="fk_audit_events_reference_id_references"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_image_id_at", "audit_events", ["image_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_image_id_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_worker_heartbeats_instance_id", table_name="worker_heartbeats")
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("instance_id")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("solo_attempts")
        batch.drop_column("warnings")
