"""Classifier heads and explanation targets: how a model version's logits become probabilities, and which
class its primary heatmaps explain.

Revision ID: 0005_model_heads
Revises: 0004_queue_sources
Create Date: 2026-11-24

- ``model_versions``: ``head`` ('softmax', 'sigmoid' or 'binary'; existing rows are softmax),
  ``head_threshold`` (the multi-label threshold of sigmoid heads, else NULL) and ``target_mode`` ('top1',
  'label' or 'both'; existing rows are top1);
- ``predictions``: ``labels``, a multi-label head's positive labels (NULL otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_model_heads"
down_revision: str | Sequence[str] | None = "0004_queue_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies at this revision (a migration must not change when camwatch.heads does).
HEADS = ("softmax", "sigmoid", "binary")
TARGET_MODES = ("top1", "label", "both")


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("head", sa.String(16), nullable=False, server_default="softmax"))
        batch.add_column(sa.Column("head_threshold", sa.Float(), nullable=True))
        batch.add_column(sa.Column("target_mode", sa.String(16), nullable=False, server_default="top1"))
        batch.create_check_constraint("ck_model_versions_head", sa.column("head").in_(HEADS))
        batch.create_check_constraint("ck_model_versions_target_mode", sa.column("target_mode").in_(TARGET_MODES))
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("labels", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("labels")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_constraint("ck_model_versions_target_mode", type_="check")
        batch.drop_constraint("ck_model_versions_head", type_="check")
        batch.drop_column("target_mode")
        batch.drop_column("head_threshold")
        batch.drop_column("head")
