"""Drift results per slice (tag value), e.g. one camera; indexes for the dashboard.

Revision ID: 0002_drift_slices
Revises: 0001_initial
Create Date: 2026-11-22

A shortcut that affects one camera in four is diluted in the overall window; drift per tag value makes
it visible. ``slice`` is '' for all images, else ``key=value``; it joins the unique key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_drift_slices"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KEY = ["reference_id", "window_kind", "window_start", "statistic", "class_index", "test"]


def upgrade() -> None:
    with op.batch_alter_table("drift_results") as batch:
        batch.add_column(sa.Column("slice", sa.String(200), nullable=False, server_default=""))
        batch.drop_constraint("uq_drift_results_window_test", type_="unique")
        batch.create_unique_constraint("uq_drift_results_window_test", [*_OLD_KEY, "slice"])
    op.create_index("ix_images_processed_at", "images", ["processed_at"])
    op.create_index("ix_images_captured_at_status", "images", ["captured_at", "status"])


def downgrade() -> None:
    op.drop_index("ix_images_captured_at_status", table_name="images")
    op.drop_index("ix_images_processed_at", table_name="images")
    op.execute(sa.text("DELETE FROM drift_results WHERE slice <> ''"))
    with op.batch_alter_table("drift_results") as batch:
        batch.drop_constraint("uq_drift_results_window_test", type_="unique")
        batch.create_unique_constraint("uq_drift_results_window_test", _OLD_KEY)
        batch.drop_column("slice")
