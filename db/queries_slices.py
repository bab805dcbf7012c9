"""Queries of the Slices and Health pages: tag keys and values, per-slice aggregates and samples,
errors, workers' backlog and the database size.

Samples are hash samples (:func:`db.queries.hash_sample`): every slice is sampled at the same rate, so
the union of the other slices is a fair sample of "the rest".
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, case, func, literal, select

from db.models import Flag, Heatmap, Image, ImageTag, Prediction
from db.queries import ImageFilter, apply_filter, capture_range, hash_sample, statistic_column, tag_key_is
from db.versions import heatmap_join, of_version, prediction_join

log = logging.getLogger(__name__)

MAX_TAG_VALUES = 500


def _distinct(engine: Engine, column: Any, *conditions: Any, limit: int) -> list[str]:
    """Distinct values of an indexed column in order, by a loose index scan (a recursive CTE that seeks
    the next larger value): one index seek per distinct value instead of a scan of every row."""
    walk = select(func.min(column).label("v")).where(*conditions).cte("walk", recursive=True)
    following = select(func.min(column)).where(*conditions, column > walk.c.v).scalar_subquery()
    walk = walk.union_all(select(following).where(walk.c.v.is_not(None)))
    with engine.connect() as conn:
        return [str(v) for v in conn.execute(select(walk.c.v).where(walk.c.v.is_not(None)).limit(limit)).scalars()]


def tag_keys(engine: Engine) -> list[str]:
    """Tag keys in use (``image_tags.key``), sorted."""
    return _distinct(engine, ImageTag.key, limit=MAX_TAG_VALUES)


def tag_values(engine: Engine, key: str) -> list[str]:
    """Values of tag ``key``, sorted (at most :data:`MAX_TAG_VALUES`)."""
    return _distinct(engine, ImageTag.value, ImageTag.key == key, limit=MAX_TAG_VALUES)


def slice_summary(engine: Engine, key: str, f: ImageFilter) -> pd.DataFrame:
    """Per value of tag ``key`` among the images matching ``f``: ``value``, ``images`` (processed images
    with the tag: the worker tags images when it finishes them, ok or error) and ``flagged`` (images with
    at least one flag).

    When ``f`` selects every image (no class or tag, a range covering every capture), the counts come from
    the ``(key, value)`` index alone; flagged images are counted from the flags (a small share of the
    images) rather than by probing every image.
    """
    if _selects_everything(engine, f):
        counted = (select(ImageTag.value, func.count().label("images")).where(ImageTag.key == key)
                   .group_by(ImageTag.value))
    else:
        counted = apply_filter(select(ImageTag.value, func.count().label("images")).select_from(Image)
                               .join(ImageTag, and_(ImageTag.image_id == Image.id, tag_key_is(key))),
                               f, predictions_joined=False).group_by(ImageTag.value)
    flagged_ids = select(Flag.image_id, Flag.model_version_id).distinct().subquery("flagged_ids")
    flagged = apply_filter(select(ImageTag.value, func.count().label("flagged")).select_from(flagged_ids)
                           .join(Image, and_(Image.id == flagged_ids.c.image_id,
                                             of_version(flagged_ids.c.model_version_id, f.model_version_id)))
                           .join(ImageTag, and_(ImageTag.image_id == Image.id, tag_key_is(key))),
                           f, predictions_joined=False).group_by(ImageTag.value)
    with engine.connect() as conn:
        images = {str(v): int(n) for v, n in conn.execute(counted)}
        flags = {str(v): int(n) for v, n in conn.execute(flagged)}
    values = sorted(images)
    return pd.DataFrame({"value": pd.Series(values, dtype=object),
                         "images": pd.Series([images[v] for v in values], dtype="int64"),
                         "flagged": pd.Series([flags.get(v, 0) for v in values], dtype="int64")})


def _selects_everything(engine: Engine, f: ImageFilter) -> bool:
    if f.class_index is not None or f.tag_key is not None:
        return False
    if f.start is None and f.end is None:
        return True
    bounds = capture_range(engine)
    return bounds is None or ((f.start is None or f.start <= bounds[0]) and (f.end is None or f.end > bounds[1]))


def slice_sample(engine: Engine, key: str, statistic: str, f: ImageFilter, per_mille: int) -> pd.DataFrame:
    """A hash sample (``per_mille``) of the images matching ``f`` with tag ``key``: ``value`` (the tag's),
    ``x`` (the statistic; may be NaN), ``grid_h``, ``grid_w``, ``data`` (primary heatmap bytes, state 'ok'
    maps only; other rows have data None)."""
    column = statistic_column(statistic)
    stmt = (select(ImageTag.value.label("value"), column.label("x"), Heatmap.grid_h, Heatmap.grid_w,
                   case((Heatmap.state == "ok", Heatmap.data), else_=None).label("data"))
            .select_from(Image)
            .join(ImageTag, and_(ImageTag.image_id == Image.id, tag_key_is(key)))
            .join(Heatmap, heatmap_join(f.model_version_id)))
    needs_prediction = statistic == "confidence" or f.class_index is not None
    if needs_prediction:
        stmt = stmt.join(Prediction, prediction_join(f.model_version_id))
    if per_mille < 1000:
        stmt = stmt.where(hash_sample(per_mille))
    stmt = apply_filter(stmt, f, predictions_joined=needs_prediction)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    return frame.astype({"x": "float64"})


# ------------------------------------------------------------------------------------------------- health


def _error_reason() -> Any:
    """``images.error`` without the leading ``"<uri>: "`` the worker puts in front of decode errors, so
    that the same reason on different files counts once."""
    prefix_length = func.length(Image.uri) + 2
    return case((func.substr(Image.error, 1, prefix_length) == Image.uri + literal(": "),
                 func.substr(Image.error, prefix_length + 1)), else_=Image.error)


def error_reasons(engine: Engine, limit: int = 20) -> pd.DataFrame:
    """Images in status 'error' per reason (module docstring of :func:`_error_reason`): reason, images."""
    inner = select(_error_reason().label("reason")).where(Image.status == "error").subquery()
    stmt = (select(inner.c.reason, func.count().label("images")).group_by(inner.c.reason)
            .order_by(func.count().desc(), inner.c.reason).limit(limit))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def recent_errors(engine: Engine, limit: int = 20) -> pd.DataFrame:
    """The newest failed images: image_id, uri, attempts, processed_at, error."""
    stmt = (select(Image.id.label("image_id"), Image.uri, Image.attempts, Image.processed_at, Image.error)
            .where(Image.status == "error").order_by(Image.processed_at.desc().nulls_last(), Image.id.desc())
            .limit(limit))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def oldest_pending(engine: Engine) -> dt.datetime | None:
    """When the oldest image still waiting ('pending' or 'processing') was first seen, or None."""
    stmt = select(func.min(Image.first_seen_at)).where(Image.status.in_(("pending", "processing")))
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def database_size(engine: Engine) -> int | None:
    """Bytes used by the database: the SQLite file plus its WAL, or ``pg_database_size``; None for an
    in-memory SQLite database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.execute(select(func.pg_database_size(func.current_database()))).scalar_one())
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
