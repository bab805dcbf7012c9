"""Queries about individual images: the flagged gallery, one image's details, heatmap streams, and the two
writes the dashboard makes besides reviews (``db.writes.add_review``): adding a reference member.

Severity of a flag (same definition as :mod:`camwatch.monitoring.flags`): ``margin / scale`` with ``margin = value -
threshold`` for rules that fire above their threshold and ``threshold - value`` for rules that fire below
it (:data:`FLAGGED_BELOW`), ``scale = |threshold|`` (1 when the threshold is 0). An image's severity is the
maximum over its flags (of the selected rule when filtering by rule). ``atypical_attention`` stores the
largest ``|z|`` against ``k``, so its severity is ``(|z| - k) / k`` -- when only the heatmap-correlation
part fired, the stored value is below ``k`` and the SQL severity is negative (the image still sorts after
images with positive severity).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.sql import ColumnElement

from camwatch.conventions import REVIEW_STATUSES, UNREVIEWED
from camwatch.monitoring.flags import FLAGGED_BELOW
from camwatch.statistics.registry import CAM_BOX_KEYS, HEATMAP_KEYS
from db.codec import decode_heatmap
from db.models import (
    Flag,
    Heatmap,
    Image,
    ImageTag,
    ModelVersion,
    Prediction,
    Reference,
    ReferenceMember,
    Review,
)
from db.queries import RAW_COLUMNS, AnySelect, ImageFilter, apply_filter
from db.session import dialect_insert, write_transaction
from db.versions import flag_of, heatmap_join, prediction_join


def flag_severity() -> ColumnElement[Any]:
    """SQL expression of one flag's severity (module docstring); NULL when value or threshold is NULL."""
    margin = case((Flag.rule.in_(sorted(FLAGGED_BELOW)), Flag.threshold - Flag.value),
                  else_=Flag.value - Flag.threshold)
    scale = case((Flag.threshold == 0, 1.0), else_=func.abs(Flag.threshold))
    return margin / scale


@dataclass(frozen=True)
class GalleryFilter:
    """Flagged images matching ``images``, flagged by ``rule`` (any when None), with a review status:
    None (any), ``'unreviewed'`` or a verdict of the latest review."""

    images: ImageFilter = ImageFilter()
    rule: str | None = None
    review: str | None = None


def _gallery_statement(g: GalleryFilter) -> AnySelect:
    """Flagged images matching ``g`` with their severity, flag count, latest verdict and, in ``total``,
    the number of rows of the whole result (a window count, so one query serves a page and its total)."""
    if g.review is not None and g.review not in REVIEW_STATUSES:
        raise ValueError(f"unknown review status {g.review!r}; expected one of {REVIEW_STATUSES}")
    # Start from the images (capture-time range), then their flags: cheaper than grouping every flag.
    version = g.images.model_version_id
    per_image = (select(Flag.image_id, func.max(flag_severity()).label("severity"), func.count().label("n_flags"))
                 .select_from(Image).join(Flag, flag_of(version)))
    if g.rule is not None:
        per_image = per_image.where(Flag.rule == g.rule)
    sev = apply_filter(per_image, g.images, predictions_joined=False).group_by(Flag.image_id).subquery("sev")
    latest = select(Review.image_id, func.max(Review.id).label("review_id")).group_by(Review.image_id) \
        .subquery("latest_review")
    stmt = (select(Image.id.label("image_id"), Image.captured_at, Prediction.class_index, Prediction.confidence,
                   sev.c.severity, sev.c.n_flags, Review.verdict.label("review"), func.count().over().label("total"))
            .select_from(sev)
            .join(Image, Image.id == sev.c.image_id)
            .join(Prediction, prediction_join(version))
            .outerjoin(latest, latest.c.image_id == Image.id)
            .outerjoin(Review, Review.id == latest.c.review_id))
    if g.review == UNREVIEWED:
        stmt = stmt.where(latest.c.review_id.is_(None))
    elif g.review is not None:
        stmt = stmt.where(Review.verdict == g.review)
    return stmt


def flagged_page(engine: Engine, g: GalleryFilter, limit: int, offset: int = 0) -> pd.DataFrame:
    """One page of flagged images, most severe first (ties: newest id first): columns image_id, captured_at,
    class_index, confidence, severity, n_flags, review (latest verdict or None), total (rows matching ``g``,
    the same on every row; a page past the end is empty, see :func:`flagged_total`)."""
    stmt = _gallery_statement(g)
    stmt = stmt.order_by(stmt.selected_columns.severity.desc().nulls_last(), Image.id.desc())
    with engine.connect() as conn:
        result = conn.execute(stmt.limit(limit).offset(offset))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def flagged_total(engine: Engine, g: GalleryFilter) -> int:
    """Number of flagged images matching ``g``."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(_gallery_statement(g).subquery())).scalar_one())


def flag_rules(engine: Engine) -> list[str]:
    """Rules that flagged at least one image, sorted (a loose index scan would not help: few rules)."""
    with engine.connect() as conn:
        return [str(r) for r in conn.execute(select(Flag.rule).group_by(Flag.rule).order_by(Flag.rule)).scalars()]


def flags_of(engine: Engine, image_ids: Sequence[int], model_version_id: int | None = None) -> pd.DataFrame:
    """Flags of the given images (on the results of ``model_version_id``, default: each image's own
    version): image_id, rule, value, threshold, severity, most severe first."""
    if not image_ids:
        return pd.DataFrame(columns=["image_id", "rule", "value", "threshold", "severity"])
    sev = flag_severity().label("severity")
    stmt = (select(Flag.image_id, Flag.rule, Flag.value, Flag.threshold, sev).join(Image, flag_of(model_version_id))
            .where(Flag.image_id.in_(list(image_ids))).order_by(Flag.image_id, sev.desc()))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


@dataclass(frozen=True)
class ImageView:
    """What it takes to draw one image: the stored thumbnail, the uri, sizes, object boxes and the primary
    heatmap (``native`` decoded; None when the image has no heatmap)."""

    image_id: int
    uri: str
    width: int | None
    height: int | None
    thumbnail: bytes | None
    object_boxes: list[list[float]]
    native: np.ndarray | None
    extent: list[float] | None
    cam_box: list[float] | None  # original pixels
    state: str | None
    method: str | None = None  # the heatmap's CAM method, target class and whether it is the primary one
    target_class: int | None = None
    is_primary: bool = True


def _view_columns() -> list[Any]:
    return [Image.id, Image.uri, Image.width, Image.height, Image.thumbnail, Image.region, Heatmap.grid_h,
            Heatmap.grid_w, Heatmap.data, Heatmap.extent, Heatmap.state, Heatmap.method, Heatmap.target_class,
            Heatmap.is_primary, *(getattr(Heatmap, name) for name in CAM_BOX_KEYS)]


def _view(row: Any) -> ImageView:
    native = None if row.data is None else decode_heatmap(row.data, row.grid_h, row.grid_w)
    box = [row.cam_box_x0, row.cam_box_y0, row.cam_box_x1, row.cam_box_y1]
    cam_box = None
    if row.width and row.height and all(v is not None for v in box):
        cam_box = [box[0] * row.width, box[1] * row.height, box[2] * row.width, box[3] * row.height]
    return ImageView(
        image_id=row.id, uri=row.uri, width=row.width, height=row.height, thumbnail=row.thumbnail,
        object_boxes=[list(map(float, b)) for b in (row.region or {}).get("boxes", [])],
        native=native, extent=row.extent, cam_box=cam_box, state=row.state, method=row.method,
        target_class=row.target_class, is_primary=row.is_primary is not False)


def image_views(engine: Engine, image_ids: Sequence[int], model_version_id: int | None = None
                ) -> dict[int, ImageView]:
    """Drawing data of the given images with their primary heatmaps of ``model_version_id`` (default: each
    image's own version; missing ids are left out)."""
    if not image_ids:
        return {}
    stmt = (select(*_view_columns())
            .outerjoin(Heatmap, heatmap_join(model_version_id))
            .where(Image.id.in_(list(image_ids))))
    with engine.connect() as conn:
        return {row.id: _view(row) for row in conn.execute(stmt)}


def heatmap_views(engine: Engine, image_id: int, model_version_id: int | None = None) -> list[ImageView]:
    """Drawing data of every stored heatmap of one image and model version (default: the image's own), e.g.
    the predicted class's and the label's, the primary first, then in storage order."""
    stmt = (select(*_view_columns()).join(Heatmap, heatmap_join(model_version_id, primary=False))
            .where(Image.id == image_id)
            .order_by(Heatmap.is_primary.desc(), Heatmap.id))
    with engine.connect() as conn:
        return [_view(row) for row in conn.execute(stmt)]


@dataclass(frozen=True)
class ImageDetail:
    """Everything the Image page shows about one image (plain values, cache-friendly)."""

    image: dict[str, Any]  # images row without the thumbnail
    prediction: dict[str, Any] | None
    heatmap: dict[str, Any] | None  # primary heatmap row without data
    other_heatmaps: list[dict[str, Any]]
    class_names: list[str]
    tags: dict[str, str]
    flags: pd.DataFrame
    reviews: pd.DataFrame
    reference_ids: list[int]


def image_detail(engine: Engine, image_id: int, model_version_id: int | None = None) -> ImageDetail | None:
    """Details of image ``image_id`` with the results of ``model_version_id`` (default: the image's own
    primary version), or None when there is no such image."""
    image_columns = [c for c in Image.__table__.columns if c.name != "thumbnail"]
    heatmap_columns = [c for c in Heatmap.__table__.columns if c.name != "data"]
    with engine.connect() as conn:
        image = conn.execute(select(*image_columns).where(Image.id == image_id)).mappings().one_or_none()
        if image is None:
            return None
        version = image["model_version_id"] if model_version_id is None else model_version_id
        prediction = conn.execute(select(*Prediction.__table__.columns).where(
            Prediction.image_id == image_id, Prediction.model_version_id == version)).mappings().one_or_none()
        heatmaps = [dict(r) for r in conn.execute(select(*heatmap_columns).where(
            Heatmap.image_id == image_id, Heatmap.model_version_id == version)
            .order_by(Heatmap.is_primary.desc(), Heatmap.id)).mappings()]
        names = conn.execute(select(ModelVersion.class_names)
                             .where(ModelVersion.id == version)).scalar_one_or_none()
        tags = {r.key: r.value for r in conn.execute(select(ImageTag.key, ImageTag.value)
                                                     .where(ImageTag.image_id == image_id))}
        result = conn.execute(select(Review.id, Review.verdict, Review.note, Review.reviewer, Review.created_at)
                              .where(Review.image_id == image_id).order_by(Review.id.desc()))
        reviews = pd.DataFrame(result.all(), columns=list(result.keys()))
        references = [int(r) for r in conn.execute(select(ReferenceMember.reference_id)
                                                   .where(ReferenceMember.image_id == image_id)).scalars()]
    primary = [h for h in heatmaps if h["is_primary"]]
    return ImageDetail(
        image=dict(image), prediction=None if prediction is None else dict(prediction),
        heatmap=primary[0] if primary else None, other_heatmaps=[h for h in heatmaps if not h["is_primary"]],
        class_names=[str(n) for n in names or []], tags=tags, flags=flags_of(engine, [image_id], version),
        reviews=reviews, reference_ids=references)


def statistics_of(heatmap: dict[str, Any] | None, prediction: dict[str, Any] | None) -> dict[str, float | None]:
    """The stored statistics of an image (heatmap columns, raw values, confidence) by name."""
    values: dict[str, float | None] = {}
    if heatmap is not None:
        values.update({name: heatmap.get(name) for name in (*HEATMAP_KEYS, *RAW_COLUMNS)})
    if prediction is not None:
        values["confidence"] = prediction.get("confidence")
    return values


def add_reference_member(engine: Engine, reference_id: int, image_id: int) -> bool:
    """Add an image to a reference's members; False when it was a member already. The reference's
    statistics are rebuilt by the worker, not here."""
    with write_transaction(engine) as conn:
        if conn.execute(select(Reference.id).where(Reference.id == reference_id)).scalar_one_or_none() is None:
            raise ValueError(f"reference {reference_id} does not exist")
        inserted = conn.execute(dialect_insert(conn.dialect.name, ReferenceMember)
                                .values(reference_id=reference_id, image_id=image_id)
                                .on_conflict_do_nothing().returning(ReferenceMember.image_id)).scalar_one_or_none()
    return inserted is not None


# ----------------------------------------------------------------------------------------- heatmap streams


@dataclass(frozen=True)
class HeatmapBatch:
    """Decoded primary heatmaps of a batch of images on one grid: ``maps`` (m, rows, cols) float32 and the
    predicted class of each."""

    class_index: np.ndarray
    maps: np.ndarray


def iter_heatmaps(engine: Engine, f: ImageFilter, *, chunk_rows: int = 5000,
                  limit: int | None = None) -> Iterator[HeatmapBatch]:
    """Stream the primary heatmaps (state 'ok') of the images matching ``f``, ``chunk_rows`` rows at a time,
    decoded in bulk (one :func:`db.codec.decode_heatmap` call per grid and chunk). At most ``limit`` rows
    (the earliest captured) when given."""
    stmt: AnySelect = (select(Prediction.class_index, Heatmap.grid_h, Heatmap.grid_w, Heatmap.data).select_from(Image)
            .join(Heatmap, and_(heatmap_join(f.model_version_id), Heatmap.state == "ok"))
            .join(Prediction, prediction_join(f.model_version_id)))
    stmt = apply_filter(stmt, f, predictions_joined=True)
    if limit is not None:
        stmt = stmt.order_by(Image.captured_at).limit(limit)  # the capture-time index's order: no sort
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt)
        for rows in result.partitions():
            yield from _decode_rows(rows)


def _decode_rows(rows: Sequence[Any]) -> Iterator[HeatmapBatch]:
    grids: dict[tuple[int, int], list[Any]] = {}
    for row in rows:
        grids.setdefault((row.grid_h, row.grid_w), []).append(row)
    for (h, w), same in grids.items():
        maps = decode_heatmap(b"".join(r.data for r in same), h * len(same), w).reshape(len(same), h, w)
        yield HeatmapBatch(np.fromiter((r.class_index for r in same), dtype=np.int64, count=len(same)), maps)
