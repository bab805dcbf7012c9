"""Queries of the Compare page: two model versions' results of the images both processed.

One row per image with a prediction and a primary heatmap of *both* versions (results are keyed by image
and model version, :mod:`db.versions`), matching the filter's capture-time range and tag slice (its class
and version fields are ignored: the page names both versions). The maths is
:mod:`camwatch.monitoring.compare`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, func, select
from sqlalchemy.orm import aliased

from camwatch.statistics.registry import HEATMAP_KEYS
from db.codec import decode_heatmap
from db.models import Heatmap, Image, ImageTag, Prediction
from db.queries import AnySelect, ImageFilter, apply_filter, hash_sample, sample_rate

#: Statistics compared per image: the heatmap statistics and the confidence.
COMPARED: tuple[str, ...] = (*HEATMAP_KEYS, "confidence")


def _pair_statement(a: int, b: int, f: ImageFilter, slice_key: str | None) -> tuple[AnySelect, Any, Any]:
    pa, pb = aliased(Prediction, name="pa"), aliased(Prediction, name="pb")
    ha, hb = aliased(Heatmap, name="ha"), aliased(Heatmap, name="hb")
    columns: list[Any] = [Image.id.label("image_id"), Image.captured_at, pa.class_index.label("class_a"),
                          pb.class_index.label("class_b"), pa.confidence.label("confidence_a"),
                          pb.confidence.label("confidence_b")]
    for name in HEATMAP_KEYS:
        columns += [getattr(ha, name).label(f"{name}_a"), getattr(hb, name).label(f"{name}_b")]
    stmt = (select(*columns).select_from(Image)
            .join(pa, and_(pa.image_id == Image.id, pa.model_version_id == a))
            .join(pb, and_(pb.image_id == Image.id, pb.model_version_id == b))
            .join(ha, and_(ha.image_id == Image.id, ha.model_version_id == a, ha.is_primary))
            .join(hb, and_(hb.image_id == Image.id, hb.model_version_id == b, hb.is_primary)))
    if slice_key is not None:
        tag = aliased(ImageTag, name="slice_tag")  # apart from the filter's own tag join
        stmt = stmt.add_columns(tag.value.label("slice")).outerjoin(
            tag, and_(tag.image_id == Image.id, tag.key.concat("") == slice_key))
    scope = ImageFilter(start=f.start, end=f.end, tag_key=f.tag_key, tag_value=f.tag_value)
    return apply_filter(stmt, scope, predictions_joined=True), ha, hb


def compared_count(engine: Engine, a: int, b: int, f: ImageFilter) -> int:
    """Images with results of both versions matching ``f``'s time range and tag."""
    stmt, _, _ = _pair_statement(a, b, f, None)
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())


def compared_images(engine: Engine, a: int, b: int, f: ImageFilter, slice_key: str | None = None,
                    max_rows: int = 20_000) -> tuple[pd.DataFrame, int]:
    """The images both versions processed (a hash sample of about ``max_rows`` when there are more):
    ``image_id``, ``captured_at``, ``class_a``/``class_b``, ``<statistic>_a``/``<statistic>_b`` for every
    statistic of :data:`COMPARED`, ``map_a``/``map_b`` (the primary heatmaps, decoded; None unless their
    state is 'ok') and ``slice`` (the image's value of tag ``slice_key``; None without one). Returns the
    frame and the per-mille sample rate (1000: every image)."""
    rate = sample_rate(compared_count(engine, a, b, f), max_rows)
    stmt, ha, hb = _pair_statement(a, b, f, slice_key)
    stmt = stmt.add_columns(ha.state.label("state_a"), ha.grid_h.label("grid_h_a"), ha.grid_w.label("grid_w_a"),
                            ha.data.label("data_a"), hb.state.label("state_b"), hb.grid_h.label("grid_h_b"),
                            hb.grid_w.label("grid_w_b"), hb.data.label("data_b"))
    if rate < 1000:
        stmt = stmt.where(hash_sample(rate))
    with engine.connect() as conn:
        result = conn.execute(stmt.order_by(Image.id))
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for side in ("a", "b"):
        frame[f"map_{side}"] = [
            decode_heatmap(data, h, w) if state == "ok" and data is not None else None
            for state, h, w, data in zip(frame[f"state_{side}"], frame[f"grid_h_{side}"], frame[f"grid_w_{side}"],
                                         frame[f"data_{side}"], strict=True)]
        frame = frame.drop(columns=[f"state_{side}", f"grid_h_{side}", f"grid_w_{side}", f"data_{side}"])
    if slice_key is None:
        frame["slice"] = pd.Series([None] * len(frame), dtype=object)
    numeric = {f"{name}_{side}": "float64" for name in COMPARED for side in ("a", "b")}
    return frame.astype(numeric), rate
