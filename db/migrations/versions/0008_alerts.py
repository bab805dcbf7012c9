"""Alerts: one row per episode of an alert rule's subject (``db/models_alerts.py``, docs/alerts.md).

Revision ID: 0008_alerts
Revises: 0007_calibrated_drift
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_alerts"
down_revision: str | Sequence[str] | None = "0007_calibrated_drift"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALERT_STATES = ("firing", "resolved")  # frozen copy of camwatch.conventions.ALERT_STATES


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("subject_key", sa.String(400), nullable=False),
        sa.Column("statistic", sa.String(64), nullable=True),
        sa.Column("class_index", sa.Integer(), nullable=True),
        sa.Column("slice", sa.String(200), server_default="", nullable=False),
        sa.Column("target", sa.String(300), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        _time("first_seen"),
        _time("last_seen"),
        _time("resolved_at", nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        _time("since", nullable=True),
        _time("notified_at", nullable=True),
        sa.Column("resolved_notified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        _time("acknowledged_at", nullable=True),
        _time("silenced_until", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.CheckConstraint(sa.column("state").in_(ALERT_STATES), name="ck_alerts_state"),
    )
    op.create_index("ix_alerts_rule_subject_key_id", "alerts", ["rule", "subject_key", "id"])
    op.create_index("ix_alerts_state", "alerts", ["state"])


def downgrade() -> None:
    op.drop_index("ix_alerts_state", table_name="alerts")
    op.drop_index("ix_alerts_rule_subject_key_id", table_name="alerts")
    op.drop_table("alerts")
