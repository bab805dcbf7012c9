"""Read queries of the dashboard: overview counts, time series, references and drift results.

Conventions shared by ``db.queries*``:

- SQLAlchemy constructs with bound parameters only; column names (statistics, time units) are checked
  against allowlists and mapped to column objects, never spliced into SQL text.
- Aggregation happens in SQL (``GROUP BY``): small results (a row per time bucket, class or tag value).
- Times are aware UTC. Buckets floor ``captured_at`` (or ``processed_at``) to the UTC hour or day: on SQLite
  by cutting the stored text (:class:`db.types.UTCDateTime`) to ``YYYY-MM-DD HH`` / ``YYYY-MM-DD``, on
  PostgreSQL with ``date_trunc(unit, t, 'UTC')``; :func:`bucket_start` turns either into a datetime.
- "Statistic": a ``heatmaps`` column of :data:`camwatch.statistics.registry.HEATMAP_KEYS`, a raw value (``raw_max``,
  ``raw_sum``, ``target_logit``, ``confidence``) or an image property of ``IMAGE_KEYS`` (primary heatmaps only).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Engine, Select, String, and_, cast, func, select
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql import ColumnElement

from camwatch.conventions import ALL_CLASSES, ALL_IMAGES
from camwatch.statistics.registry import ENGINE_KEYS, HEATMAP_KEYS, IMAGE_KEYS, STATISTICS
from db.codec import decode_heatmap
from db.labels import corrected_labels, effective_correct
from db.models import (
    DriftResult,
    Flag,
    Heatmap,
    Image,
    ImageTag,
    ModelVersion,
    Prediction,
    Reference,
    ReferenceHeatmap,
    ReferenceStat,
)
from db.models_ops import WorkerHeartbeat
from db.queries_drift import WHY_COLUMNS
from db.versions import heatmap_join, of_version, prediction_join

TIME_UNITS: tuple[str, ...] = ("hour", "day")
#: Engine values stored with the prediction; the other engine values are columns of ``heatmaps``.
PREDICTION_COLUMNS: tuple[str, ...] = ("confidence",)
RAW_COLUMNS: tuple[str, ...] = tuple(k for k in ENGINE_KEYS if k not in PREDICTION_COLUMNS)
STATISTIC_NAMES: tuple[str, ...] = tuple(STATISTICS)
#: A SELECT of any columns (SQLAlchemy 2.1 types a Select by its column types).
AnySelect = Select[*tuple[Any, ...]]
_SQLITE_BUCKET_LENGTH = {"hour": 13, "day": 10}


@dataclass(frozen=True)
class ImageFilter:
    """Which images a query looks at: capture time in ``[start, end)``, predicted class, one tag value; and
    whose results: those of ``model_version_id`` (None: each image's own primary version, see
    :mod:`db.versions`)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    class_index: int | None = None
    tag_key: str | None = None
    tag_value: str | None = None
    model_version_id: int | None = None


def statistic_column(name: str) -> QueryableAttribute[Any]:
    """The column holding statistic ``name`` (see the module docstring); ``ValueError`` for unknown names."""
    if name in HEATMAP_KEYS or name in RAW_COLUMNS:
        return getattr(Heatmap, name)
    if name in PREDICTION_COLUMNS:
        return getattr(Prediction, name)
    if name in IMAGE_KEYS:
        return getattr(Image, name)
    raise ValueError(f"unknown statistic {name!r}; expected one of {', '.join(STATISTIC_NAMES)}")


def time_bucket(column: Any, unit: str, dialect: str) -> ColumnElement[Any]:
    """``column`` floored to ``unit`` in UTC, as text on SQLite and ``timestamptz`` on PostgreSQL."""
    if unit not in TIME_UNITS:
        raise ValueError(f"unknown time unit {unit!r}; expected one of {TIME_UNITS}")
    if dialect == "sqlite":
        return func.substr(column, 1, _SQLITE_BUCKET_LENGTH[unit], type_=String())
    if dialect == "postgresql":
        return func.date_trunc(unit, column, "UTC")
    raise ValueError(f"unsupported database dialect {dialect!r}")


def bucket_start(value: Any) -> dt.datetime:
    """A bucket from :func:`time_bucket` as an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value)
    pattern = "%Y-%m-%d %H" if len(text) == _SQLITE_BUCKET_LENGTH["hour"] else "%Y-%m-%d"
    return dt.datetime.strptime(text, pattern).replace(tzinfo=dt.UTC)


def apply_filter(stmt: AnySelect, f: ImageFilter, *, predictions_joined: bool) -> AnySelect:
    """Add ``f``'s conditions to a statement selecting from ``images``; joins ``predictions`` for a class
    filter unless ``predictions_joined`` and ``image_tags`` for a tag filter.

    The tag's key is compared as ``key || ''``: without table statistics SQLite's planner would otherwise
    start from the ``(key, value)`` index (it assumes an equality there matches ~10 rows) and visit every
    image with that tag key -- all of them -- instead of starting from the capture-time range; the
    expression leaves the ``(image_id, key)`` primary key usable for the join.
    """
    if f.start is not None:
        stmt = stmt.where(Image.captured_at >= f.start)
    if f.end is not None:
        stmt = stmt.where(Image.captured_at < f.end)
    if f.class_index is not None:
        if not predictions_joined:
            stmt = stmt.join(Prediction, prediction_join(f.model_version_id))
        stmt = stmt.where(Prediction.class_index == f.class_index)
    if f.tag_key is not None and f.tag_value is not None:
        stmt = stmt.join(ImageTag, and_(ImageTag.image_id == Image.id, tag_key_is(f.tag_key),
                                        ImageTag.value == f.tag_value))
    return stmt


def tag_key_is(key: str) -> ColumnElement[bool]:
    """``image_tags.key = key``, written so that it does not drive the join order (see :func:`apply_filter`)."""
    return ImageTag.key.concat("") == key


SAMPLE_MULTIPLIER = 761  # coprime to 1000


def hash_sample(per_mille: int) -> ColumnElement[bool]:
    """Condition keeping ``per_mille``/1000 of the images: ``(id * 761) mod 1000 < per_mille``.

    Since 761 is coprime to 1000, ``id -> id * 761 mod 1000`` permutes every block of 1000 consecutive ids,
    so exactly ``per_mille`` ids of each block are kept, scattered within it: a deterministic systematic
    sample, spread evenly over capture order (ids grow with registration), unrelated to tags, needing no
    ``ORDER BY random()``, and evaluated on the id alone -- before any other table is read for the row.
    (The id is cast to BIGINT: ``id * 761`` overflows PostgreSQL's INTEGER above 2.8 million.)"""
    return (cast(Image.id, BigInteger) * SAMPLE_MULTIPLIER) % 1000 < per_mille


def sample_rate(n_rows: int, target_rows: int) -> int:
    """The per-mille rate that keeps about ``target_rows`` of ``n_rows`` (1000 = everything)."""
    return 1000 if n_rows <= target_rows else max(1, math.ceil(1000 * target_rows / n_rows))


def _frame(engine: Engine, stmt: AnySelect) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


# ----------------------------------------------------------------------------------------------- overview


def capture_range(engine: Engine) -> tuple[dt.datetime, dt.datetime] | None:
    """Earliest and latest ``captured_at`` (``None`` for an empty database); both use the index."""
    with engine.connect() as conn:
        first = conn.execute(select(func.min(Image.captured_at))).scalar_one()
        last = conn.execute(select(func.max(Image.captured_at))).scalar_one()
    if first is None or last is None:
        return None
    return bucket_start(first), bucket_start(last)


def status_counts(engine: Engine, f: ImageFilter | None = None) -> dict[str, int]:
    """Images per status (pending, processing, ok, error), for images matching ``f``."""
    stmt = apply_filter(select(Image.status, func.count()).select_from(Image), f or ImageFilter(),
                        predictions_joined=False).group_by(Image.status)
    with engine.connect() as conn:
        counts = {str(status): int(n) for status, n in conn.execute(stmt)}
    return {status: counts.get(status, 0) for status in ("pending", "processing", "ok", "error")}


def flagged_count(engine: Engine, f: ImageFilter | None = None) -> int:
    """Images with at least one flag, among images matching ``f``. Starts from the flagged images (a small
    share) and checks each against ``f``, so the cost does not grow with the length of the time range."""
    f = f or ImageFilter()
    flagged = select(Flag.image_id, Flag.model_version_id).distinct().subquery("flagged")
    stmt = apply_filter(select(func.count()).select_from(flagged).join(Image, and_(
        Image.id == flagged.c.image_id, of_version(flagged.c.model_version_id, f.model_version_id))),
                        f, predictions_joined=False)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def last_processed(engine: Engine) -> tuple[dt.datetime | None, int]:
    """When the worker last finished an image, and the id of the newest image row: the dashboard polls this
    (two index lookups) to refresh itself when new results arrive."""
    with engine.connect() as conn:
        when = conn.execute(select(func.max(Image.processed_at))).scalar_one()
        newest = conn.execute(select(func.max(Image.id))).scalar_one()
    return when, int(newest or 0)


def label_accuracy(engine: Engine, f: ImageFilter | None = None) -> tuple[int, int]:
    """``(labelled, correct)`` among ok images matching ``f`` whose label is known: a reviewer's
    'wrong label' correction overrides the stored label (:mod:`db.labels`); otherwise
    ``predictions.correct`` is set when the sidecar or annotation gave a label that names a model class."""
    corrected = corrected_labels()
    correct = effective_correct(corrected)
    f = f or ImageFilter()
    stmt = apply_filter(select(func.count(correct), func.count().filter(correct.is_(True)))
                        .select_from(Image).join(Prediction, prediction_join(f.model_version_id))
                        .outerjoin(corrected, corrected.c.image_id == Image.id)
                        .where(correct.is_not(None)), f, predictions_joined=True)
    with engine.connect() as conn:
        labelled, correct = conn.execute(stmt).one()
    return int(labelled), int(correct)


def throughput(engine: Engine, since: dt.datetime) -> pd.DataFrame:
    """Images finished (ok or error) per hour of ``processed_at`` since ``since``: columns bucket, images."""
    bucket = time_bucket(Image.processed_at, "hour", engine.dialect.name).label("bucket")
    inner = select(bucket).where(Image.processed_at >= since).subquery()
    frame = _frame(engine, select(inner.c.bucket, func.count().label("images"))
                   .group_by(inner.c.bucket).order_by(inner.c.bucket))
    frame["bucket"] = [bucket_start(v) for v in frame["bucket"]]
    return frame


def workers(engine: Engine) -> pd.DataFrame:
    """Every worker heartbeat with its model version (spec, method), most recently seen first."""
    stmt = (select(WorkerHeartbeat.worker_id, WorkerHeartbeat.hostname, WorkerHeartbeat.pid,
                   WorkerHeartbeat.source, WorkerHeartbeat.state, WorkerHeartbeat.started_at,
                   WorkerHeartbeat.last_seen_at, WorkerHeartbeat.processed, WorkerHeartbeat.errors,
                   WorkerHeartbeat.images_per_s, WorkerHeartbeat.model_version_id,
                   ModelVersion.spec.label("model"), ModelVersion.method)
            .outerjoin(ModelVersion, ModelVersion.id == WorkerHeartbeat.model_version_id)
            .order_by(WorkerHeartbeat.last_seen_at.desc()))
    return _frame(engine, stmt)


def class_names(engine: Engine, model_version_id: int | None = None) -> list[str]:
    """Class names of ``model_version_id`` (default: the newest model version); empty without any."""
    stmt = select(ModelVersion.class_names)
    stmt = stmt.where(ModelVersion.id == model_version_id) if model_version_id is not None else \
        stmt.order_by(ModelVersion.id.desc()).limit(1)
    with engine.connect() as conn:
        names = conn.execute(stmt).scalar_one_or_none()
    return [str(n) for n in names] if names else []


# ------------------------------------------------------------------------------------------- time series


def stat_time_series(engine: Engine, statistics: Sequence[str], unit: str, f: ImageFilter,
                     per_mille: int = 1000) -> pd.DataFrame:
    """Per time bucket of ``captured_at``: ``bucket``, ``images`` (with a primary heatmap) and the mean of
    each statistic (column named after it; NULL values are ignored by AVG). With ``per_mille < 1000`` the
    means and counts are those of a hash sample (:func:`hash_sample`): long ranges stay fast, and the mean of
    thousands of sampled images per bucket differs from the full mean by a small fraction of the spread."""
    columns = [statistic_column(name) for name in statistics]
    needs_prediction = "confidence" in statistics or f.class_index is not None
    bucket = time_bucket(Image.captured_at, unit, engine.dialect.name).label("bucket")
    inner = (select(bucket, *[c.label(name) for c, name in zip(columns, statistics, strict=True)])
             .select_from(Image)
             .join(Heatmap, heatmap_join(f.model_version_id)))
    if needs_prediction:
        inner = inner.join(Prediction, prediction_join(f.model_version_id))
    if per_mille < 1000:
        inner = inner.where(hash_sample(per_mille))
    sub = apply_filter(inner, f, predictions_joined=needs_prediction).subquery()
    stmt = (select(sub.c.bucket, func.count().label("images"), *[func.avg(sub.c[name]).label(name)
                                                                  for name in statistics])
            .group_by(sub.c.bucket).order_by(sub.c.bucket))
    frame = _frame(engine, stmt)
    frame["bucket"] = [bucket_start(v) for v in frame["bucket"]]
    return frame.astype({name: "float64" for name in statistics})


def class_mix(engine: Engine, unit: str, f: ImageFilter, per_mille: int = 1000) -> pd.DataFrame:
    """Images per time bucket and predicted class: columns bucket, class_index, images (of the hash sample
    when ``per_mille < 1000``, see :func:`stat_time_series`)."""
    bucket = time_bucket(Image.captured_at, unit, engine.dialect.name).label("bucket")
    rows = select(bucket, Prediction.class_index).select_from(Image).join(Prediction, prediction_join(f.model_version_id))
    if per_mille < 1000:
        rows = rows.where(hash_sample(per_mille))
    sub = apply_filter(rows, f, predictions_joined=True).subquery()
    stmt = (select(sub.c.bucket, sub.c.class_index, func.count().label("images"))
            .group_by(sub.c.bucket, sub.c.class_index).order_by(sub.c.bucket, sub.c.class_index))
    frame = _frame(engine, stmt)
    frame["bucket"] = [bucket_start(v) for v in frame["bucket"]]
    return frame


# ------------------------------------------------------------------------------------- reference & drift


@dataclass(frozen=True)
class ReferenceInfo:
    id: int
    name: str
    kind: str
    method: str
    model_version_id: int
    built_at: dt.datetime | None
    n_images: int


def current_reference_stmt(model_version_id: int | None = None) -> Select:
    """The most recently built reference (of ``model_version_id`` when given; or, when none is built yet,
    the newest one): the reference drift is computed against."""
    stmt = (select(Reference.id, Reference.name, Reference.kind, Reference.method, Reference.model_version_id,
                   Reference.built_at, Reference.n_images)
            .order_by(Reference.built_at.is_(None), Reference.built_at.desc(), Reference.id.desc()).limit(1))
    return stmt if model_version_id is None else stmt.where(Reference.model_version_id == model_version_id)


def current_reference(engine: Engine, model_version_id: int | None = None) -> ReferenceInfo | None:
    """:func:`current_reference_stmt`'s reference."""
    with engine.connect() as conn:
        row = conn.execute(current_reference_stmt(model_version_id)).one_or_none()
    return None if row is None else ReferenceInfo(**row._mapping)


def reference_bands(engine: Engine, reference_id: int, class_index: int = ALL_CLASSES) -> pd.DataFrame:
    """Reference mean, std and n per statistic of one class: columns statistic, mean, std, n."""
    stmt = (select(ReferenceStat.statistic, ReferenceStat.mean, ReferenceStat.std, ReferenceStat.n)
            .where(ReferenceStat.reference_id == reference_id, ReferenceStat.class_index == class_index))
    return _frame(engine, stmt)


def drift_window_kinds(engine: Engine, reference_id: int) -> list[str]:
    """Window kinds with drift results for the reference, e.g. ``['day', 'hour']``."""
    stmt = (select(DriftResult.window_kind).where(DriftResult.reference_id == reference_id)
            .group_by(DriftResult.window_kind).order_by(DriftResult.window_kind))
    with engine.connect() as conn:
        return [str(k) for k in conn.execute(stmt).scalars()]


_DRIFT_COLUMNS = (DriftResult.statistic, DriftResult.class_index, DriftResult.test, DriftResult.window_start,
                  DriftResult.window_end, DriftResult.score, DriftResult.threshold, DriftResult.drifted,
                  DriftResult.n_reference, DriftResult.n_current, *WHY_COLUMNS)


def latest_drift(engine: Engine, reference_id: int, window_kind: str, class_index: int = ALL_CLASSES,
                 slice_: str = ALL_IMAGES) -> pd.DataFrame:
    """Every drift result of the latest *tested* window of ``window_kind`` for one class and slice (one row
    per statistic and test): the newest window with at least one score, so that a window that has only
    just started ("not enough data" everywhere) does not hide the last verdict."""
    scope = and_(DriftResult.reference_id == reference_id, DriftResult.window_kind == window_kind,
                 DriftResult.class_index == class_index, DriftResult.slice == slice_)
    latest = select(func.max(DriftResult.window_start)).where(scope, DriftResult.score.is_not(None)).scalar_subquery()
    stmt = select(*_DRIFT_COLUMNS).where(scope, DriftResult.window_start == latest).order_by(DriftResult.statistic)
    return _frame(engine, stmt)


def drift_history(engine: Engine, reference_id: int, window_kind: str, statistic: str,
                  class_index: int = ALL_CLASSES, since: dt.datetime | None = None,
                  slice_: str = ALL_IMAGES) -> pd.DataFrame:
    """Drift results of one statistic, class and slice per window, oldest first."""
    stmt = select(*_DRIFT_COLUMNS).where(
        DriftResult.reference_id == reference_id, DriftResult.window_kind == window_kind,
        DriftResult.statistic == statistic, DriftResult.class_index == class_index, DriftResult.slice == slice_)
    if since is not None:
        stmt = stmt.where(DriftResult.window_start >= since)
    return _frame(engine, stmt.order_by(DriftResult.window_start))


def drift_statistics(engine: Engine, reference_id: int, window_kind: str) -> list[str]:
    """Statistics with drift results for this reference and window kind (class -1, all images), sorted."""
    stmt = (select(DriftResult.statistic)
            .where(DriftResult.reference_id == reference_id, DriftResult.window_kind == window_kind,
                   DriftResult.class_index == ALL_CLASSES, DriftResult.slice == ALL_IMAGES)
            .group_by(DriftResult.statistic).order_by(DriftResult.statistic))
    with engine.connect() as conn:
        return [str(s) for s in conn.execute(stmt).scalars()]


def drift_slices(engine: Engine, reference_id: int, window_kind: str) -> list[str]:
    """Slices (``key=value``) with their own drift results for this reference and window kind, sorted."""
    stmt = (select(DriftResult.slice)
            .where(DriftResult.reference_id == reference_id, DriftResult.window_kind == window_kind,
                   DriftResult.slice != ALL_IMAGES)
            .group_by(DriftResult.slice).order_by(DriftResult.slice))
    with engine.connect() as conn:
        return [str(s) for s in conn.execute(stmt).scalars()]


def reference_heatmaps(engine: Engine, reference_id: int) -> dict[int, tuple[np.ndarray, int]]:
    """The reference's mean normalised heatmaps by class (``-1`` = all): ``(map, n)`` decoded to float32."""
    stmt = (select(ReferenceHeatmap.class_index, ReferenceHeatmap.n, ReferenceHeatmap.grid_h, ReferenceHeatmap.grid_w,
                   ReferenceHeatmap.data).where(ReferenceHeatmap.reference_id == reference_id))
    with engine.connect() as conn:
        return {int(r.class_index): (decode_heatmap(r.data, r.grid_h, r.grid_w), int(r.n)) for r in conn.execute(stmt)}


def reference_values(engine: Engine, reference_id: int, statistic: str, class_index: int = ALL_CLASSES) -> np.ndarray:
    """The reference's stored sample of one statistic and class (empty when it has none)."""
    stmt = select(ReferenceStat.values).where(ReferenceStat.reference_id == reference_id,
                                              ReferenceStat.statistic == statistic,
                                              ReferenceStat.class_index == class_index)
    with engine.connect() as conn:
        values = conn.execute(stmt).scalar_one_or_none()
    return np.asarray(values or [], dtype=np.float64)
