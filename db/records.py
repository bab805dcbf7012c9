"""Plain records exchanged between the storage layer and its callers (no torch, no SQLAlchemy objects)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class RegisterOutcome(enum.StrEnum):
    """What :func:`db.registry.register_files` did with a file."""

    NEW = "new"  # bytes never seen: a pending image row was created
    DUPLICATE = "duplicate"  # bytes already known under another uri: only a sighting was recorded
    KNOWN = "known"  # this uri is already registered with these bytes: nothing changed


@dataclass(frozen=True)
class FileFound:
    """A stable file the scanner hashed, to be registered by :func:`db.registry.register_files`."""

    uri: str
    sha256: str
    size_bytes: int
    mtime_ns: int
    source: str
    captured_at: dt.datetime


@dataclass(frozen=True)
class ClaimedImage:
    """An image handed to one worker by :func:`db.claims.claim_batch`."""

    id: int
    uri: str
    sha256: str
    captured_at: dt.datetime
    source: str


@dataclass(frozen=True)
class PredictionRecord:
    """Top-1 prediction and top-k lists; ``confidence`` is the head's probability of ``class_index``
    (definitions per head: :mod:`camwatch.heads`).

    Lists are ordered by decreasing probability; ``labels`` are a multi-label head's positive labels (None for
    other heads); ``correct`` is None when the label is unknown.
    """

    class_index: int
    confidence: float
    topk_indices: list[int]
    topk_probs: list[float]
    topk_logits: list[float]
    correct: bool | None = None
    labels: list[int] | None = None


@dataclass(frozen=True)
class HeatmapRecord:
    """The worker's own heatmap of one image.

    ``native`` is the map at the layer's resolution (float32, shape (rows, cols)); ``extent`` is the
    ``(x0, y0, x1, y1)`` box of the original image it covers; ``stats`` maps names from
    ``camwatch.statistics.registry.HEATMAP_KEYS`` to values (missing names and non-finite values are stored as NULL).
    The primary heatmap is the one statistics, flags, references and drift use; others explain other targets.
    """

    method: str
    target_class: int
    target_layer: str
    state: str  # 'ok' | 'zero' | 'nonfinite'
    native: np.ndarray
    extent: tuple[float, float, float, float]
    raw_max: float | None
    raw_sum: float | None
    target_logit: float | None
    stats: dict[str, float | None] = field(default_factory=dict)
    is_primary: bool = True


@dataclass(frozen=True)
class FlagRecord:
    """A rule that fired for an image: ``value`` crossed ``threshold``."""

    rule: str
    value: float | None
    threshold: float | None


@dataclass(frozen=True)
class VersionResult:
    """One model version's results for one image: what a shadow model (``ImageResult.shadows``) or
    ``camwatch reprocess`` (:func:`db.results.write_version_results`) writes. ``heatmap`` is the primary map
    of that version; ``flags`` are evaluated on its statistics."""

    model_version_id: int
    prediction: PredictionRecord
    heatmap: HeatmapRecord | None = None
    extra_heatmaps: list[HeatmapRecord] = field(default_factory=list)
    flags: list[FlagRecord] = field(default_factory=list)
    image_id: int | None = None  # set by reprocess; a shadow result belongs to its ImageResult


@dataclass(frozen=True)
class ImageResult:
    """Everything the worker learned about one claimed image, written by :func:`db.results.complete_batch`.

    ``status`` is 'ok' or 'error' (then ``error`` says why); ``captured_at``, when given, overrides
    the capture time the scanner registered (e.g. EXIF read during decoding); ``warnings`` say what was
    ignored or replaced (a malformed sidecar, an implausible capture time). ``properties`` maps names of
    :data:`camwatch.statistics.registry.IMAGE_PROPERTY_COLUMNS` to values; ``camera_model`` is from EXIF.
    ``model_version_id`` is the primary model's version (its prediction, heatmaps and flags are the fields
    here); ``shadows`` are the results of the other models the worker runs on the same image (shadow mode),
    written in the same transaction under their own versions.
    """

    image_id: int
    status: str
    error: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    captured_at: dt.datetime | None = None
    label: str | None = None
    label_index: int | None = None
    region: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    thumbnail: bytes | None = None
    model_version_id: int | None = None
    prediction: PredictionRecord | None = None
    heatmap: HeatmapRecord | None = None
    flags: list[FlagRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    extra_heatmaps: list[HeatmapRecord] = field(default_factory=list)  # other targets (is_primary False)
    properties: dict[str, float | None] = field(default_factory=dict)
    camera_model: str | None = None
    shadows: list[VersionResult] = field(default_factory=list)


@dataclass(frozen=True)
class DriftResultRecord:
    """One drift test result; ``class_index = -1`` means all classes. Upserted on
    (reference_id, window_kind, window_start, statistic, class_index, test, slice)."""

    reference_id: int
    window_kind: str  # 'hour' | 'day' | 'count:N'
    window_start: dt.datetime
    window_end: dt.datetime
    statistic: str
    class_index: int
    test: str
    score: float | None
    threshold: float | None
    drifted: bool
    n_reference: int
    n_current: int
    slice: str = ""  # '' = all images, else 'key=value' (e.g. 'camera=cam-2')
    # the calibrated decision and why (docs/metrics.md "Drift decisions"); ``drifted == (decision == 'drifted')``.
    # Left None, the result was decided by its test's threshold alone: rule 'threshold', decision from
    # ``drifted`` (and 'not_enough_data' without a score)
    decision: str | None = None
    decision_rule: str | None = None
    raw_drifted: bool | None = None
    p_value: float | None = None
    q_value: float | None = None
    fdr: float | None = None
    effect_size: float | None = None
    effect_threshold: float | None = None
