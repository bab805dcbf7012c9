"""QA workflow and retention: image properties, review labels and claims, accepted thresholds,
periodic task state.

Revision ID: 0006_qa_workflow
Revises: 0005_model_heads
Create Date: 2026-11-24

- ``images``: the pixel properties (``brightness``, ``contrast``, ``sharpness``, ``colourfulness``), the EXIF
  ``camera_model`` and ``pruned_at`` (retention deleted the image's bulky data; the row stays);
- ``reviews``: ``label``/``label_index`` (the right label of a 'wrong label' verdict), verdict ``unsure``;
- new tables ``review_claims``, ``threshold_overrides``, ``maintenance_runs`` (the audit trail of accepted
  thresholds is 0003's ``audit_events``)
  (``db/models_qa.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_qa_workflow"
down_revision: str | Sequence[str] | None = "0005_model_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies at this revision (a migration must not change when models.py does).
PROPERTY_COLUMNS = ("brightness", "contrast", "sharpness", "colourfulness")
VERDICTS_BEFORE = ("wrong_attention_confirmed", "false_alarm", "wrong_label")
VERDICTS = (*VERDICTS_BEFORE, "unsure")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _verdict_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_constraint("ck_reviews_verdict", type_="check")
        batch.create_check_constraint("ck_reviews_verdict", sa.column("verdict").in_(values))


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        for name in PROPERTY_COLUMNS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch.add_column(sa.Column("camera_model", sa.String(100), nullable=True))
        batch.add_column(_time("pruned_at", nullable=True))
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("label", sa.String(200), nullable=True))
        batch.add_column(sa.Column("label_index", sa.Integer(), nullable=True))
    _verdict_check(VERDICTS)

    op.create_table(
        "review_claims",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        _time("claimed_at"),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("image_id", name="pk_review_claims"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE",
                                name="fk_review_claims_image_id_images"),
    )
    op.create_index("ix_review_claims_holder", "review_claims", ["holder"])
    op.create_index("ix_review_claims_expires_at", "review_claims", ["expires_at"])
    op.create_table(
        "threshold_overrides",
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("setting", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("previous", sa.Float(), nullable=True),
        sa.Column("accepted_by", sa.String(200), nullable=False),
        _time("accepted_at"),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("rule", name="pk_threshold_overrides"),
    )
    op.create_table(
        "maintenance_runs",
        sa.Column("task", sa.String(64), nullable=False),
        _time("started_at"),
        _time("finished_at", nullable=True),
        sa.Column("runner", sa.String(200), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("task", name="pk_maintenance_runs"),
    )


def downgrade() -> None:
    op.drop_table("maintenance_runs")
    op.drop_table("threshold_overrides")
    op.drop_index("ix_review_claims_expires_at", table_name="review_claims")
    op.drop_index("ix_review_claims_holder", table_name="review_claims")
    op.drop_table("review_claims")
    op.execute(sa.text("DELETE FROM reviews WHERE verdict = 'unsure'"))
    _verdict_check(VERDICTS_BEFORE)
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("label_index")
        batch.drop_column("label")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("pruned_at")
        batch.drop_column("camera_model")
        for name in reversed(PROPERTY_COLUMNS):
            batch.drop_column(name)
