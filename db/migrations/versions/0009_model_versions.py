"""Model versions side by side: results keyed by (image, model version, method).

Revision ID: 0009_model_versions
Revises: 0008_alerts
Create Date: 2026-12-01

- ``predictions``: primary key ``(image_id, model_version_id)`` (was ``image_id``): one prediction per image
  and model version;
- ``heatmaps``: ``model_version_id`` (existing rows: their image's version), unique on
  ``(image_id, model_version_id, method, target_class)``;
- ``flags``: ``model_version_id`` (existing rows: their image's version), unique on
  ``(image_id, model_version_id, rule)``.

Rows whose version cannot be told (no image version and no prediction: never written by camwatch) are
deleted on upgrade. Downgrade keeps one version per image (the image's own, ``images.model_version_id``)
and deletes the others' results, since the old keys cannot hold them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_model_versions"
down_revision: str | Sequence[str] | None = "0008_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IMAGES = sa.table("images", sa.column("id", sa.Integer), sa.column("model_version_id", sa.Integer))
_PREDICTIONS = sa.table("predictions", sa.column("image_id", sa.Integer), sa.column("model_version_id", sa.Integer))


def _backfill(name: str) -> None:
    """``model_version_id`` of ``name``'s rows from their image, else from the image's prediction."""
    table = sa.table(name, sa.column("image_id", sa.Integer), sa.column("model_version_id", sa.Integer))
    from_image = (sa.select(_IMAGES.c.model_version_id).where(_IMAGES.c.id == table.c.image_id)
                  .scalar_subquery())
    from_prediction = (sa.select(sa.func.min(_PREDICTIONS.c.model_version_id))
                       .where(_PREDICTIONS.c.image_id == table.c.image_id).scalar_subquery())
    op.execute(sa.update(table).values(model_version_id=sa.func.coalesce(from_image, from_prediction)))
    op.execute(sa.delete(table).where(table.c.model_version_id.is_(None)))


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_constraint("pk_predictions", type_="primary")
        batch.create_primary_key("pk_predictions", ["image_id", "model_version_id"])
    for name, old_unique, new_unique, new_columns in (
            ("heatmaps", "uq_heatmaps_image_id_method_target_class",
             "uq_heatmaps_image_id_model_version_id_method_target_class",
             ["image_id", "model_version_id", "method", "target_class"]),
            ("flags", "uq_flags_image_id_rule", "uq_flags_image_id_model_version_id_rule",
             ["image_id", "model_version_id", "rule"])):
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("model_version_id", sa.Integer(), nullable=True))
        _backfill(name)
        with op.batch_alter_table(name) as batch:
            batch.alter_column("model_version_id", existing_type=sa.Integer(), nullable=False)
            batch.create_foreign_key(f"fk_{name}_model_version_id_model_versions", "model_versions",
                                     ["model_version_id"], ["id"])
            batch.drop_constraint(old_unique, type_="unique")
            batch.create_unique_constraint(new_unique, new_columns)


def downgrade() -> None:
    for name, old_unique, new_unique, old_columns in (
            ("flags", "uq_flags_image_id_rule", "uq_flags_image_id_model_version_id_rule", ["image_id", "rule"]),
            ("heatmaps", "uq_heatmaps_image_id_method_target_class",
             "uq_heatmaps_image_id_model_version_id_method_target_class", ["image_id", "method", "target_class"])):
        table = sa.table(name, sa.column("image_id", sa.Integer), sa.column("model_version_id", sa.Integer))
        own = sa.select(_IMAGES.c.model_version_id).where(_IMAGES.c.id == table.c.image_id).scalar_subquery()
        op.execute(sa.delete(table).where(sa.or_(own.is_(None), table.c.model_version_id != own)))
        with op.batch_alter_table(name) as batch:
            batch.drop_constraint(new_unique, type_="unique")
            batch.create_unique_constraint(old_unique, old_columns)
            batch.drop_constraint(f"fk_{name}_model_version_id_model_versions", type_="foreignkey")
            batch.drop_column("model_version_id")
    own = sa.select(_IMAGES.c.model_version_id).where(_IMAGES.c.id == _PREDICTIONS.c.image_id).scalar_subquery()
    op.execute(sa.delete(_PREDICTIONS).where(sa.or_(own.is_(None), _PREDICTIONS.c.model_version_id != own)))
    with op.batch_alter_table("predictions") as batch:
        batch.drop_constraint("pk_predictions", type_="primary")
        batch.create_primary_key("pk_predictions", ["image_id"])
