"""SQLAlchemy models of the camwatch schema (the initial Alembic revision mirrors them exactly).

Conventions:
- times are timezone-aware UTC (:class:`db.types.UTCDateTime`), defaults come from :func:`db.types.utcnow`;
- ``class_index = -1`` (:data:`camwatch.conventions.ALL_CLASSES`) means "all classes" in reference and
  drift tables; the vocabularies of statuses, states and verdicts come from :mod:`camwatch.conventions`;
- object boxes (``region``) are ``(x0, y0, x1, y1)`` in original image pixels, x = column, y = row,
  half-open (see ``worker/regions.py``); ``cam_box_*`` and ``extent`` are in coordinates normalised to
  the original image (``[0, 1]`` = the whole image, see docs/metrics.md);
- heatmap bytes are little-endian float16, row-major (see :mod:`db.codec`);
- rows that belong to an image are deleted with it (``ON DELETE CASCADE``); model versions and
  references are never deleted implicitly;
- results are keyed by (image, model version[, method, target]): predictions, heatmaps and flags carry
  ``model_version_id``, so a new model version (a shadow model, ``camwatch reprocess``) never replaces
  another version's results; ``images.model_version_id`` is the *primary* version that last processed it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from camwatch.conventions import IMAGE_STATUSES, REFERENCE_KINDS, REVIEW_VERDICTS
from camwatch.heads import HEAD_KINDS, TARGET_MODES
from camwatch.monitoring.calibration import DECISIONS, RULES
from camwatch.statistics.heatmap import HEATMAP_STATES
from camwatch.statistics.registry import CATEGORIES, HEATMAP_KEYS, IMAGE_PROPERTY_COLUMNS
from db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(name: str, values: tuple[str, ...]) -> CheckConstraint:
    """CHECK constraint ``name IN (values...)`` named ``ck_<table>_<name>``."""
    return CheckConstraint(column(name).in_(values), name=name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def _image_fk() -> Any:
    return ForeignKey("images.id", ondelete="CASCADE")


class ModelVersion(Base):
    """One deployed model configuration; ``fingerprint`` identifies it (see ``db.writes.model_fingerprint``).

    ``head`` says how logits become probabilities and confidence (:mod:`camwatch.heads`), ``head_threshold``
    is the multi-label threshold (sigmoid heads only, else NULL), ``target_mode`` which class the primary
    heatmap explains (``top1`` or ``label``; ``both`` adds the label's map as a second heatmap).
    """

    __tablename__ = "model_versions"
    __table_args__ = (_one_of("head", HEAD_KINDS), _one_of("target_mode", TARGET_MODES))

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    num_classes: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    input_size: Mapped[list[int]] = mapped_column(JSON)  # [height, width]
    preprocessing: Mapped[dict[str, Any]] = mapped_column(JSON)
    target_layer: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(32))
    head: Mapped[str] = mapped_column(String(16), default="softmax", server_default="softmax")
    head_threshold: Mapped[float | None] = mapped_column(Float)
    target_mode: Mapped[str] = mapped_column(String(16), default="top1", server_default="top1")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ImagePropertyColumns:
    """One nullable Float column per :data:`camwatch.statistics.registry.IMAGE_PROPERTY_COLUMNS` (mixed into
    :class:`Image`)."""


for _name in IMAGE_PROPERTY_COLUMNS:
    setattr(ImagePropertyColumns, _name, mapped_column(Float, nullable=True))


class Image(ImagePropertyColumns, Base):
    """One distinct image content (by sha256) and its processing state; ``captured_at`` drives time charts.

    Image properties (brightness...) and ``camera_model`` come from the decoded pixels and EXIF; ``pruned_at``
    is set when retention deleted the image's bulky data (the row stays, so the bytes are never processed
    again)."""

    __tablename__ = "images"
    __table_args__ = (
        # id last: claims read pending/expired rows in (lease_until, id) order straight from the index.
        Index("ix_images_status_lease_until_id", "status", "lease_until", "id"),
        Index("ix_images_processed_at", "processed_at"),  # dashboard: throughput
        Index("ix_images_captured_at_status", "captured_at", "status"),  # dashboard: status per time range
        # drift passes: images processed since the watermark, and one window's images (db.drift_incremental)
        Index("ix_images_model_version_id_processed_at", "model_version_id", "processed_at"),
        Index("ix_images_model_version_id_captured_at", "model_version_id", "captured_at"),
        _one_of("status", IMAGE_STATUSES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    uri: Mapped[str] = mapped_column(Text)  # first-seen uri
    source: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    captured_at: Mapped[dt.datetime] = mapped_column(index=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[str] | None] = mapped_column(JSON)  # what was ignored or replaced (bad sidecar, clock)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # claims of this image alone (a batch of one): only a crash then convicts it (see db.claims)
    solo_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None]
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    label: Mapped[str | None] = mapped_column(String(200))
    label_index: Mapped[int | None] = mapped_column(Integer)
    region: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"boxes": [[x0,y0,x1,y1],...], "source": ...}
    tags: Mapped[dict[str, str] | None] = mapped_column(JSON)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)  # JPEG, longest side <= 256 px
    # The deployed model's own prediction, when a queue event carried it (set at registration).
    deployed_class_index: Mapped[int | None] = mapped_column(Integer)
    deployed_score: Mapped[float | None] = mapped_column(Float)
    camera_model: Mapped[str | None] = mapped_column(String(CATEGORIES["camera_model"].max_length))
    pruned_at: Mapped[dt.datetime | None]


class ImageTag(Base):
    """Tags as rows, for slicing by ``key = value`` (``images.tags`` keeps the same dict for display)."""

    __tablename__ = "image_tags"
    __table_args__ = (Index("ix_image_tags_key_value", "key", "value"),)

    image_id: Mapped[int] = mapped_column(_image_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Sighting(Base):
    """One uri under which some image bytes were seen; ``mtime_ns``/``size_bytes`` let a scanner skip re-hashing.

    A queue event is a sighting too (``db.events``): ``uri`` is ``event:<event id>`` (a redelivery of a known
    id: ``event:<event id>@<delivery>``, a duplicate), ``event_id`` its id and ``event_meta`` what it
    carried (tags, label, boxes, time, prediction, unknown fields), which replaces sidecars for the image.
    """

    __tablename__ = "sightings"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(_image_fk(), index=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    source: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    is_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    event_id: Mapped[str | None] = mapped_column(String(200), index=True)
    event_meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Prediction(Base):
    """Top-1 prediction (``confidence`` = the head's probability of ``class_index``, see :mod:`camwatch.heads`)
    and the top-k lists; ``labels`` are a multi-label head's positive labels by decreasing probability (NULL
    for softmax and binary heads).

    Non-finite model outputs are stored as NULL (JSON ``null`` inside the lists).
    """

    __tablename__ = "predictions"

    image_id: Mapped[int] = mapped_column(_image_fk(), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), primary_key=True)
    class_index: Mapped[int] = mapped_column(Integer, index=True)
    confidence: Mapped[float | None] = mapped_column(Float)  # NULL when the model output was not finite
    topk_indices: Mapped[list[int]] = mapped_column(JSON)
    topk_probs: Mapped[list[float | None]] = mapped_column(JSON)
    topk_logits: Mapped[list[float | None]] = mapped_column(JSON)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    labels: Mapped[list[int] | None] = mapped_column(JSON)


#: One nullable Float column per heatmap statistic of the registry, same names, registry order.
class HeatmapStatColumns:
    """Columns of :data:`camwatch.statistics.registry.HEATMAP_KEYS` (mixed into :class:`Heatmap`)."""


for _name in HEATMAP_KEYS:
    setattr(HeatmapStatColumns, _name, mapped_column(Float, nullable=True))


class Heatmap(HeatmapStatColumns, Base):
    """A native-resolution heatmap, its raw magnitudes and its statistics (one column per
    :data:`~camwatch.statistics.registry.HEATMAP_KEYS`).

    ``extent`` is the ``(x0, y0, x1, y1)`` rectangle, normalised to the original image, that the grid covers.
    """

    __tablename__ = "heatmaps"
    __table_args__ = (
        UniqueConstraint("image_id", "model_version_id", "method", "target_class"),
        _one_of("state", HEATMAP_STATES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(_image_fk())
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    method: Mapped[str] = mapped_column(String(32))
    target_class: Mapped[int] = mapped_column(Integer)
    target_layer: Mapped[str] = mapped_column(String(200))
    is_primary: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16))
    grid_h: Mapped[int] = mapped_column(Integer)
    grid_w: Mapped[int] = mapped_column(Integer)
    extent: Mapped[list[float]] = mapped_column(JSON)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    raw_max: Mapped[float | None] = mapped_column(Float)
    raw_sum: Mapped[float | None] = mapped_column(Float)
    target_logit: Mapped[float | None] = mapped_column(Float)


class Flag(Base):
    """An image flagged by a rule (``rule`` is a stable key, e.g. ``'energy_outside'``) on the results of one
    model version."""

    __tablename__ = "flags"
    __table_args__ = (UniqueConstraint("image_id", "model_version_id", "rule"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(_image_fk())
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    rule: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Review(Base):
    """A human verdict on a (usually flagged) image; a 'wrong label' verdict carries the right ``label``
    (and its class index when it names a model class), which overrides the image's label for accuracy."""

    __tablename__ = "reviews"
    __table_args__ = (_one_of("verdict", REVIEW_VERDICTS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(_image_fk(), index=True)
    verdict: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    label: Mapped[str | None] = mapped_column(String(200))
    label_index: Mapped[int | None] = mapped_column(Integer)


class Reference(Base):
    """A named reference set of images that drift is measured against."""

    __tablename__ = "references"
    __table_args__ = (_one_of("kind", REFERENCE_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    method: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    built_at: Mapped[dt.datetime | None]
    n_images: Mapped[int] = mapped_column(Integer, default=0)


def _reference_fk() -> Any:
    return ForeignKey("references.id", ondelete="CASCADE")


class ReferenceMember(Base):
    __tablename__ = "reference_members"

    reference_id: Mapped[int] = mapped_column(_reference_fk(), primary_key=True)
    image_id: Mapped[int] = mapped_column(_image_fk(), primary_key=True)


class ReferenceStat(Base):
    """Distribution of one statistic over a reference; ``values`` is a sample of at most 5000 values."""

    __tablename__ = "reference_stats"

    reference_id: Mapped[int] = mapped_column(_reference_fk(), primary_key=True)
    class_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    statistic: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    mean: Mapped[float | None] = mapped_column(Float)
    std: Mapped[float | None] = mapped_column(Float)
    values: Mapped[list[float]] = mapped_column(JSON)


class ReferenceHeatmap(Base):
    """Mean of the reference's normalised native heatmaps (each map divided by its sum), float16 bytes."""

    __tablename__ = "reference_heatmaps"

    reference_id: Mapped[int] = mapped_column(_reference_fk(), primary_key=True)
    class_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    grid_h: Mapped[int] = mapped_column(Integer)
    grid_w: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class DriftResult(Base):
    """One drift test of one statistic over one window; recomputation upserts on the unique key."""

    __tablename__ = "drift_results"
    __table_args__ = (
        UniqueConstraint("reference_id", "window_kind", "window_start", "statistic", "class_index", "test",
                         "slice", name="uq_drift_results_window_test"),
        _one_of("decision", DECISIONS), _one_of("decision_rule", RULES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference_id: Mapped[int] = mapped_column(_reference_fk())
    window_kind: Mapped[str] = mapped_column(String(32))  # 'hour' | 'day' | 'count:N'
    window_start: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime]
    statistic: Mapped[str] = mapped_column(String(64))
    class_index: Mapped[int] = mapped_column(Integer)
    test: Mapped[str] = mapped_column(String(32))
    slice: Mapped[str] = mapped_column(String(200), default="", server_default="")  # '' = all, else key=value
    score: Mapped[float | None] = mapped_column(Float)  # the test's own score and threshold
    threshold: Mapped[float | None] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)  # the calibrated decision: decision == 'drifted'
    n_reference: Mapped[int] = mapped_column(Integer)
    n_current: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # why (camwatch.monitoring.calibration; docs/metrics.md "Drift decisions")
    decision: Mapped[str] = mapped_column(String(20), default="no_drift", server_default="no_drift")
    decision_rule: Mapped[str] = mapped_column(String(20), default="fdr_effect", server_default="fdr_effect")
    raw_drifted: Mapped[bool | None] = mapped_column(Boolean)  # the test's own decision, score vs threshold
    p_value: Mapped[float | None] = mapped_column(Float)
    q_value: Mapped[float | None] = mapped_column(Float)  # Benjamini-Hochberg over the window's tests
    fdr: Mapped[float | None] = mapped_column(Float)  # the level q_value is held to
    effect_size: Mapped[float | None] = mapped_column(Float)
    effect_threshold: Mapped[float | None] = mapped_column(Float)
