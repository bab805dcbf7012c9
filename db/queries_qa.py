"""Queries of the root-cause and bias views: every drift result of a slice at once (the drift matrix), the
mix of a categorical image property over time, and a per-image sample of every statistic with the tag
value (and predicted class) and the correctness by the reviewed label, for the Slices page's bias view.
Conventions of :mod:`db.queries` (filters, time buckets, hash samples)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, func, select

from camwatch.conventions import ALL_CLASSES, ALL_IMAGES
from camwatch.statistics.registry import CATEGORIES, UNKNOWN_CATEGORY
from db.labels import corrected_labels, effective_correct
from db.models import DriftResult, Heatmap, Image, ImageTag, Prediction
from db.queries import (
    ImageFilter,
    _frame,
    apply_filter,
    bucket_start,
    hash_sample,
    statistic_column,
    tag_key_is,
    time_bucket,
)
from db.queries_drift import WHY_COLUMNS
from db.versions import heatmap_join, prediction_join


def drift_matrix(engine: Engine, reference_id: int, window_kind: str, class_index: int = ALL_CLASSES,
                 slice_: str = ALL_IMAGES, since: dt.datetime | None = None,
                 until: dt.datetime | None = None) -> pd.DataFrame:
    """Every drift result of one class and slice per window in ``[since, until)``: statistic, window_start,
    test, score, threshold, drifted and why (:data:`db.queries_drift.WHY_COLUMNS`; oldest window first)."""
    stmt = select(DriftResult.statistic, DriftResult.window_start, DriftResult.test, DriftResult.score,
                  DriftResult.threshold, DriftResult.drifted, *WHY_COLUMNS).where(
        DriftResult.reference_id == reference_id, DriftResult.window_kind == window_kind,
        DriftResult.class_index == class_index, DriftResult.slice == slice_)
    if since is not None:
        stmt = stmt.where(DriftResult.window_start >= since)
    if until is not None:
        stmt = stmt.where(DriftResult.window_start < until)
    frame = _frame(engine, stmt.order_by(DriftResult.window_start, DriftResult.statistic))
    return frame.astype({"score": "float64", "threshold": "float64"})


def category_series(engine: Engine, name: str, unit: str, f: ImageFilter, per_mille: int = 1000) -> pd.DataFrame:
    """Processed images per time bucket and value of categorical property ``name`` (missing values as
    :data:`~camwatch.statistics.registry.UNKNOWN_CATEGORY`): bucket, ``name``, images."""
    if name not in CATEGORIES:
        raise ValueError(f"unknown categorical property {name!r}; expected one of {list(CATEGORIES)}")
    column = getattr(Image, name)
    bucket = time_bucket(Image.captured_at, unit, engine.dialect.name).label("bucket")
    rows = select(bucket, func.coalesce(column, UNKNOWN_CATEGORY).label(name)).where(Image.status == "ok")
    if per_mille < 1000:
        rows = rows.where(hash_sample(per_mille))
    sub = apply_filter(rows, f, predictions_joined=False).subquery()
    stmt = (select(sub.c.bucket, sub.c[name], func.count().label("images"))
            .group_by(sub.c.bucket, sub.c[name]).order_by(sub.c.bucket, sub.c[name]))
    frame = _frame(engine, stmt)
    frame["bucket"] = [bucket_start(v) for v in frame["bucket"]]
    return frame


def bias_sample(engine: Engine, key: str, statistics: Sequence[str], f: ImageFilter, per_mille: int) -> pd.DataFrame:
    """A hash sample of the processed images with tag ``key`` matching ``f``: ``value`` (the tag's),
    ``class_index``, ``correct`` (by the reviewed label when there is one, see :mod:`db.labels`; None when
    unknown) and one column per statistic (NaN when missing)."""
    corrected = corrected_labels()
    columns: list[Any] = [statistic_column(name).label(name) for name in statistics]
    stmt = (select(ImageTag.value.label("value"), Prediction.class_index,
                   effective_correct(corrected).label("correct"), *columns)
            .select_from(Image)
            .join(ImageTag, and_(ImageTag.image_id == Image.id, tag_key_is(key)))
            .join(Prediction, prediction_join(f.model_version_id))
            .join(Heatmap, heatmap_join(f.model_version_id))
            .outerjoin(corrected, corrected.c.image_id == Image.id))
    if per_mille < 1000:
        stmt = stmt.where(hash_sample(per_mille))
    frame = _frame(engine, apply_filter(stmt, f, predictions_joined=True))
    return frame.astype({name: "float64" for name in statistics})
