"""Calibrated drift decisions and incremental drift maintenance.

Revision ID: 0007_calibrated_drift
Revises: 0006_qa_workflow
Create Date: 2026-12-01

- ``drift_results``: why each result decided what it did: ``decision`` ('drifted', 'no_drift',
  'not_enough_data'), ``decision_rule`` ('fdr_effect', 'reference_chunks', 'threshold'), ``raw_drifted``
  (the test's own score-vs-threshold decision), ``p_value``, ``q_value`` (Benjamini-Hochberg over the
  window), ``fdr``, ``effect_size``, ``effect_threshold``. Earlier rows were decided by their test's
  threshold alone: they become rule 'threshold' with their decision spelled out.
- new table ``drift_state`` (one row per reference and window kind: the processed-at watermark of the
  last drift pass, what it was computed against);
- indexes ``images (model_version_id, processed_at)`` and ``images (model_version_id, captured_at)`` for the
  incremental pass's queries (without them SQLite scans every image through the status index).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_calibrated_drift"
down_revision: str | Sequence[str] | None = "0006_qa_workflow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies at this revision.
DECISIONS = ("drifted", "no_drift", "not_enough_data")
RULES = ("fdr_effect", "reference_chunks", "threshold")
FLOATS = ("p_value", "q_value", "fdr", "effect_size", "effect_threshold")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("drift_results") as batch:
        batch.add_column(sa.Column("decision", sa.String(20), nullable=False, server_default="no_drift"))
        batch.add_column(sa.Column("decision_rule", sa.String(20), nullable=False, server_default="fdr_effect"))
        batch.add_column(sa.Column("raw_drifted", sa.Boolean(), nullable=True))
        for name in FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    results = sa.table("drift_results", sa.column("decision", sa.String), sa.column("decision_rule", sa.String),
                       sa.column("raw_drifted", sa.Boolean), sa.column("drifted", sa.Boolean),
                       sa.column("score", sa.Float))
    op.execute(results.update().values(
        decision_rule="threshold", raw_drifted=results.c.drifted,
        decision=sa.case((results.c.score.is_(None), "not_enough_data"), (results.c.drifted, "drifted"),
                         else_="no_drift")))
    with op.batch_alter_table("drift_results") as batch:
        batch.create_check_constraint("ck_drift_results_decision", sa.column("decision").in_(DECISIONS))
        batch.create_check_constraint("ck_drift_results_decision_rule", sa.column("decision_rule").in_(RULES))
    op.create_table(
        "drift_state",
        sa.Column("reference_id", sa.Integer(), nullable=False),
        sa.Column("window_kind", sa.String(32), nullable=False),
        _time("watermark", nullable=True),
        _time("reference_built_at", nullable=True),
        sa.Column("settings_key", sa.String(64), nullable=False),
        sa.Column("windows_last_pass", sa.Integer(), nullable=False),
        sa.Column("passes", sa.Integer(), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("reference_id", "window_kind", name="pk_drift_state"),
        sa.ForeignKeyConstraint(["reference_id"], ["references.id"], ondelete="CASCADE",
                                name="fk_drift_state_reference_id_references"),
    )
    op.create_index("ix_images_model_version_id_processed_at", "images", ["model_version_id", "processed_at"])
    op.create_index("ix_images_model_version_id_captured_at", "images", ["model_version_id", "captured_at"])


def downgrade() -> None:
    op.drop_index("ix_images_model_version_id_captured_at", table_name="images")
    op.drop_index("ix_images_model_version_id_processed_at", table_name="images")
    op.drop_table("drift_state")
    with op.batch_alter_table("drift_results") as batch:
        batch.drop_constraint("ck_drift_results_decision_rule", type_="check")
        batch.drop_constraint("ck_drift_results_decision", type_="check")
        for name in reversed(FLOATS):
            batch.drop_column(name)
        batch.drop_column("raw_drifted")
        batch.drop_column("decision_rule")
        batch.drop_column("decision")
