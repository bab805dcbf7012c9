"""Initial camwatch schema.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-22

Written by hand to mirror ``db/models.py``; ``tests/test_db_migrations.py`` checks with Alembic's
autogenerate comparison that the migrated schema equals the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies at this revision (a migration must not change when models.py does).
IMAGE_STATUSES = ("pending", "processing", "ok", "error")
HEATMAP_STATES = ("ok", "zero", "nonfinite")
REVIEW_VERDICTS = ("wrong_attention_confirmed", "false_alarm", "wrong_label")
REFERENCE_KINDS = ("first_n", "time_range", "folder", "manual")
WORKER_STATES = ("starting", "running", "stopping", "stopped")
STAT_COLUMNS = (
    "centroid_x", "centroid_y", "peak_x", "peak_y", "peak_value", "spread", "elongation", "entropy",
    "gini", "border_energy", "top5_share", "energy_outside", "object_area_fraction", "pointing_hit",
    "cam_box_x0", "cam_box_y0", "cam_box_x1", "cam_box_y1", "cam_box_iou",
)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sa.column(column).in_(values), name=name)


def _image_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE", name=name)


def _reference_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["reference_id"], ["references.id"], ondelete="CASCADE", name=name)


def _model_version_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], name=name)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=True),
        sa.Column("num_classes", sa.Integer(), nullable=False),
        sa.Column("class_names", sa.JSON(), nullable=False),
        sa.Column("input_size", sa.JSON(), nullable=False),
        sa.Column("preprocessing", sa.JSON(), nullable=False),
        sa.Column("target_layer", sa.String(200), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("fingerprint", name="uq_model_versions_fingerprint"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(16), nullable=True),
        _time("captured_at"),
        _time("first_seen_at"),
        _time("processed_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        _time("lease_until", nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("label_index", sa.Integer(), nullable=True),
        sa.Column("region", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("sha256", name="uq_images_sha256"),
        _model_version_fk("fk_images_model_version_id_model_versions"),
        _one_of("status", IMAGE_STATUSES, "ck_images_status"),
    )
    op.create_index("ix_images_status_lease_until_id", "images", ["status", "lease_until", "id"])
    op.create_index("ix_images_captured_at", "images", ["captured_at"])

    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("image_id", "key", name="pk_image_tags"),
        _image_fk("fk_image_tags_image_id_images"),
    )
    op.create_index("ix_image_tags_key_value", "image_tags", ["key", "value"])

    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        _time("seen_at"),
        sa.Column("is_duplicate", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sightings"),
        sa.UniqueConstraint("uri", name="uq_sightings_uri"),
        _image_fk("fk_sightings_image_id_images"),
    )
    op.create_index("ix_sightings_image_id", "sightings", ["image_id"])

    op.create_table(
        "predictions",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("topk_indices", sa.JSON(), nullable=False),
        sa.Column("topk_probs", sa.JSON(), nullable=False),
        sa.Column("topk_logits", sa.JSON(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("image_id", name="pk_predictions"),
        _image_fk("fk_predictions_image_id_images"),
        _model_version_fk("fk_predictions_model_version_id_model_versions"),
    )
    op.create_index("ix_predictions_class_index", "predictions", ["class_index"])

    op.create_table(
        "heatmaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("target_class", sa.Integer(), nullable=False),
        sa.Column("target_layer", sa.String(200), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("grid_h", sa.Integer(), nullable=False),
        sa.Column("grid_w", sa.Integer(), nullable=False),
        sa.Column("extent", sa.JSON(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("raw_max", sa.Float(), nullable=True),
        sa.Column("raw_sum", sa.Float(), nullable=True),
        sa.Column("target_logit", sa.Float(), nullable=True),
        *(sa.Column(name, sa.Float(), nullable=True) for name in STAT_COLUMNS),
        sa.PrimaryKeyConstraint("id", name="pk_heatmaps"),
        sa.UniqueConstraint("image_id", "method", "target_class", name="uq_heatmaps_image_id_method_target_class"),
        _image_fk("fk_heatmaps_image_id_images"),
        _one_of("state", HEATMAP_STATES, "ck_heatmaps_state"),
    )

    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_flags"),
        sa.UniqueConstraint("image_id", "rule", name="uq_flags_image_id_rule"),
        _image_fk("fk_flags_image_id_images"),
    )
    op.create_index("ix_flags_rule", "flags", ["rule"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(200), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        _image_fk("fk_reviews_image_id_images"),
        _one_of("verdict", REVIEW_VERDICTS, "ck_reviews_verdict"),
    )
    op.create_index("ix_reviews_image_id", "reviews", ["image_id"])

    op.create_table(
        "references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        _time("created_at"),
        _time("built_at", nullable=True),
        sa.Column("n_images", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_references"),
        sa.UniqueConstraint("name", name="uq_references_name"),
        _model_version_fk("fk_references_model_version_id_model_versions"),
        _one_of("kind", REFERENCE_KINDS, "ck_references_kind"),
    )
    op.create_table(
        "reference_members",
        sa.Column("reference_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("reference_id", "image_id", name="pk_reference_members"),
        _reference_fk("fk_reference_members_reference_id_references"),
        _image_fk("fk_reference_members_image_id_images"),
    )
    op.create_table(
        "reference_stats",
        sa.Column("reference_id", sa.Integer(), nullable=False),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("statistic", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("std", sa.Float(), nullable=True),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("reference_id", "class_index", "statistic", name="pk_reference_stats"),
        _reference_fk("fk_reference_stats_reference_id_references"),
    )
    op.create_table(
        "reference_heatmaps",
        sa.Column("reference_id", sa.Integer(), nullable=False),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("grid_h", sa.Integer(), nullable=False),
        sa.Column("grid_w", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("reference_id", "class_index", name="pk_reference_heatmaps"),
        _reference_fk("fk_reference_heatmaps_reference_id_references"),
    )
    op.create_table(
        "drift_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference_id", sa.Integer(), nullable=False),
        sa.Column("window_kind", sa.String(32), nullable=False),
        _time("window_start"),
        _time("window_end"),
        sa.Column("statistic", sa.String(64), nullable=False),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("test", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("n_current", sa.Integer(), nullable=False),
        _time("computed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_drift_results"),
        sa.UniqueConstraint("reference_id", "window_kind", "window_start", "statistic", "class_index", "test",
                            name="uq_drift_results_window_test"),
        _reference_fk("fk_drift_results_reference_id_references"),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        _time("started_at"),
        _time("last_seen_at"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("images_per_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name="pk_worker_heartbeats"),
        _model_version_fk("fk_worker_heartbeats_model_version_id_model_versions"),
        _one_of("state", WORKER_STATES, "ck_worker_heartbeats_state"),
    )


def downgrade() -> None:
    for table in ("worker_heartbeats", "drift_results", "reference_heatmaps", "reference_stats",
                  "reference_members", "references", "reviews", "flags", "heatmaps", "predictions",
                  "sightings", "image_tags", "images", "model_versions"):
        op.drop_table(table)
