"""Reference and drift storage: the images a reference is built from, its stored summary, the rows of a
drift window and the tag slices of images. The maths is :mod:`camwatch.monitoring`; the worker's
:mod:`worker.service.monitor` decides when to call these.

The reference of a model version and method is the set of its ``reference_members``; members are chosen
by the settings' rule (the first N processed images by capture time, a capture-time range, or the images of
the reference folder, source :data:`~camwatch.conventions.REFERENCE_SOURCE`) and can be extended by hand
(the dashboard's "add to reference"): whenever the member count differs from the stored ``n_images``, the
summary is rebuilt. Windows always use capture time (``images.captured_at``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from camwatch.conventions import REFERENCE_SOURCE, slice_label
from camwatch.monitoring.heatmaps import MeanHeatmap
from camwatch.monitoring.reference import ReferenceSummary, StatRow, StatSummary, build_reference
from camwatch.settings import ReferenceSettings
from camwatch.statistics.registry import CATEGORIES, HEATMAP_KEYS, IMAGE_KEYS
from db.codec import decode_heatmap, encode_heatmap
from db.drift_incremental import of_version
from db.models import (
    Heatmap,
    Image,
    ImageTag,
    ModelVersion,
    Prediction,
    Reference,
    ReferenceHeatmap,
    ReferenceMember,
    ReferenceStat,
)
from db.session import write_transaction
from db.types import utcnow

log = logging.getLogger(__name__)

_IN_CHUNK = 900  # ids per IN (...) list: under SQLite's bound-parameter limit


@dataclass(frozen=True)
class ReferenceHandle:
    """A stored reference and its summary."""

    id: int
    summary: ReferenceSummary
    built_at: dt.datetime | None = None  # when the summary was built (drift results follow it)


@dataclass(frozen=True)
class IndexedImage:
    """What windowing needs of a processed image."""

    id: int
    captured_at: dt.datetime
    processed_at: dt.datetime | None


def _rows_query(model_version_id: int, only_ok: bool = True) -> Select:
    """Rows of the images with the results of ``model_version_id`` (results are kept per version)."""
    stat_cols = [getattr(Heatmap, c) for c in HEATMAP_KEYS]
    image_cols = [getattr(Image, c) for c in (*IMAGE_KEYS, *CATEGORIES)]  # image properties, camera model
    query = (select(Image.id, Image.captured_at, Image.status, Prediction.class_index, Prediction.confidence,
                    Prediction.labels, Heatmap.raw_max, Heatmap.raw_sum, Heatmap.target_logit, Heatmap.grid_h,
                    Heatmap.grid_w, Heatmap.data, *stat_cols, *image_cols)
             .join(Prediction, (Prediction.image_id == Image.id) & (Prediction.model_version_id == model_version_id))
             .join(Heatmap, (Heatmap.image_id == Image.id) & Heatmap.is_primary
                   & (Heatmap.model_version_id == model_version_id)))
    return query.where(Image.status == "ok") if only_ok else query


def _stat_rows(conn: Connection, query: Select) -> tuple[list[int], list[StatRow]]:
    """Image ids and their :class:`StatRow` (statistics, engine values, native map) of the processed images
    the query returns."""
    ids, rows = [], []
    for r in conn.execute(query):
        m = r._mapping
        if m["status"] != "ok":
            continue
        ids.append(m["id"])
        rows.append(StatRow(class_index=m["class_index"], stats={c: m[c] for c in (*HEATMAP_KEYS, *IMAGE_KEYS)},
                            category_values={c: m[c] for c in CATEGORIES},
                            confidence=m["confidence"], raw_max=m["raw_max"], raw_sum=m["raw_sum"],
                            target_logit=m["target_logit"],
                            heatmap=decode_heatmap(m["data"], m["grid_h"], m["grid_w"]),
                            labels=None if m["labels"] is None else tuple(int(c) for c in m["labels"])))
    return ids, rows


def _rows_by_id(conn: Connection, ids: Sequence[int], model_version_id: int) -> tuple[list[int], list[StatRow]]:
    """The rows of the given image ids with ``model_version_id``'s results, read by primary key in chunks.
    The status is checked in Python, not in SQL: without table statistics SQLite prefers any index with an
    equality on it (the status index, which every processed image shares) to a few hundred primary-key
    lookups, which makes the read grow with the history."""
    out_ids: list[int] = []
    out_rows: list[StatRow] = []
    for start in range(0, len(ids), _IN_CHUNK):
        query = _rows_query(model_version_id, only_ok=False).where(Image.id.in_(list(ids[start:start + _IN_CHUNK])))
        chunk_ids, chunk_rows = _stat_rows(conn, query)
        out_ids += chunk_ids
        out_rows += chunk_rows
    return out_ids, out_rows


def window_rows(conn: Connection, model_version_id: int, ids: Sequence[int]) -> tuple[list[int], list[StatRow]]:
    """The :class:`StatRow` of the given processed images of a model version (ids in result order)."""
    return _rows_by_id(conn, ids, model_version_id)


def reference_rows(conn: Connection, reference_id: int) -> tuple[list[int], list[StatRow]]:
    """The :class:`StatRow` of a reference's member images (read by primary key, see :func:`_rows_by_id`)."""
    member_ids = list(conn.execute(select(ReferenceMember.image_id).where(ReferenceMember.reference_id == reference_id)
                                   .order_by(ReferenceMember.image_id)).scalars())
    version = conn.execute(select(Reference.model_version_id).where(Reference.id == reference_id)).scalar_one()
    return _rows_by_id(conn, member_ids, version)


def image_slices(conn: Connection, ids: Sequence[int], keys: Sequence[str]) -> dict[str, list[int]]:
    """:func:`~camwatch.conventions.slice_label` → positions in ``ids`` of the images carrying that tag value."""
    if not keys or not ids:
        return {}
    position = {image_id: i for i, image_id in enumerate(ids)}
    out: dict[str, list[int]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        for image_id, key, value in conn.execute(select(ImageTag.image_id, ImageTag.key, ImageTag.value).where(
                ImageTag.image_id.in_(chunk), ImageTag.key.in_(list(keys)))):
            out.setdefault(slice_label(key, value), []).append(position[image_id])
    return out


def processed_index(engine: Engine, model_version_id: int, by_results: bool = False) -> list[IndexedImage]:
    """Every processed image of a model version (:func:`db.drift_incremental.of_version`) whose results are
    still held (not pruned: the drift results of pruned windows stay as computed), in capture-time order
    (ties by id)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Image.id, Image.captured_at, Image.processed_at)
                            .where(Image.status == "ok", Image.pruned_at.is_(None),
                                   of_version(model_version_id, by_results))
                            .order_by(Image.captured_at, Image.id)).all()
    return [IndexedImage(*r) for r in rows]


def model_versions(engine: Engine) -> list[tuple[int, str, str]]:
    """``(id, method, spec)`` of every model version, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(ModelVersion.id, ModelVersion.method, ModelVersion.spec)
                            .order_by(ModelVersion.id)).all()
    return [(int(i), str(m), str(s)) for i, m, s in rows]


# ----------------------------------------------------------------------------------------------- references


def reference_name(model_version_id: int, method: str) -> str:
    return f"default-mv{model_version_id}-{method}"


def _choose_members(conn: Connection, rule: ReferenceSettings, model_version_id: int) -> list[int] | None:
    """Member ids by the settings' rule, or None while the rule cannot be satisfied yet."""
    base = _rows_query(model_version_id).with_only_columns(Image.id)
    if rule.kind == "first_n":
        ids = conn.execute(base.order_by(Image.captured_at, Image.id).limit(rule.first_n)).scalars().all()
        return list(ids) if len(ids) >= rule.first_n else None
    if rule.kind == "time_range":
        if rule.start is None or rule.end is None:
            raise ValueError("reference.kind = 'time_range' needs reference.start and reference.end (ISO-8601)")
        later = conn.execute(select(func.count()).select_from(Image).where(Image.captured_at >= rule.end)).scalar_one()
        if not later:
            return None  # the range may still be filling
        ids = conn.execute(base.where(Image.captured_at >= rule.start, Image.captured_at < rule.end)).scalars().all()
        return list(ids) or None
    open_ = conn.execute(select(func.count()).select_from(Image).where(
        Image.source == REFERENCE_SOURCE, Image.status.in_(("pending", "processing")))).scalar_one()
    ids = conn.execute(base.where(Image.source == REFERENCE_SOURCE)).scalars().all()
    return list(ids) if ids and not open_ else None


def _store_summary(conn: Connection, ref_id: int, summary: ReferenceSummary, n_members: int) -> dt.datetime:
    conn.execute(delete(ReferenceStat).where(ReferenceStat.reference_id == ref_id))
    conn.execute(delete(ReferenceHeatmap).where(ReferenceHeatmap.reference_id == ref_id))
    stats = [{"reference_id": ref_id, "class_index": c, "statistic": s.statistic, "n": s.n, "mean": s.mean,
              "std": s.std, "values": s.values.astype(float).tolist()} for (_, c), s in summary.stats.items()]
    if stats:
        conn.execute(insert(ReferenceStat), stats)
    maps = [{"reference_id": ref_id, "class_index": c, "n": hm.n, "grid_h": hm.data.shape[0],
             "grid_w": hm.data.shape[1], "data": encode_heatmap(hm.data)} for c, hm in summary.heatmaps.items()]
    if maps:
        conn.execute(insert(ReferenceHeatmap), maps)
    params = dict(conn.execute(select(Reference.params).where(Reference.id == ref_id)).scalar_one() or {})
    params["class_counts"] = {str(c): n for c, n in summary.class_counts.items()}
    if summary.label_counts is not None:
        params["label_counts"] = {str(c): n for c, n in summary.label_counts.items()}
    params["categories"] = summary.categories
    built_at = utcnow()
    conn.execute(update(Reference).where(Reference.id == ref_id)
                 .values(built_at=built_at, n_images=n_members, params=params))
    return built_at


def load_reference(conn: Connection, ref_id: int) -> ReferenceSummary:
    """The stored summary of reference ``ref_id``."""
    params = conn.execute(select(Reference.params).where(Reference.id == ref_id)).scalar_one() or {}
    stats = {(r.statistic, r.class_index): StatSummary(r.statistic, r.class_index, r.n, r.mean, r.std,
                                                       np.asarray(r.values, dtype=float))
             for r in conn.execute(select(ReferenceStat).where(ReferenceStat.reference_id == ref_id))}
    maps = {r.class_index: MeanHeatmap(r.n, 0, decode_heatmap(r.data, r.grid_h, r.grid_w).astype(float))
            for r in conn.execute(select(ReferenceHeatmap).where(ReferenceHeatmap.reference_id == ref_id))}
    counts = {int(c): int(n) for c, n in params.get("class_counts", {}).items()}
    labels = params.get("label_counts")
    label_counts = None if labels is None else {int(c): int(n) for c, n in labels.items()}
    categories = {str(k): {str(v): int(n) for v, n in c.items()} for k, c in params.get("categories", {}).items()}
    return ReferenceSummary(class_counts=counts, stats=stats, heatmaps=maps, label_counts=label_counts,
                            categories=categories)


def ensure_reference(engine: Engine, rule: ReferenceSettings, model_version_id: int,
                     method: str) -> ReferenceHandle | None:
    """The current reference of a model version and method, created (members chosen by ``rule``) or
    rebuilt (member count changed, or a summary stored before image properties were kept) when needed;
    None until the rule can be satisfied."""
    name = reference_name(model_version_id, method)
    with write_transaction(engine) as conn:
        ref = conn.execute(select(Reference.id, Reference.n_images, Reference.built_at, Reference.params)
                           .where(Reference.name == name)).one_or_none()
        if ref is None:
            members = _choose_members(conn, rule, model_version_id)
            if members is None:
                return None
            ref_id = conn.execute(insert(Reference).values(
                name=name, kind=rule.kind, params=rule.model_dump(mode="json"),
                model_version_id=model_version_id, method=method, created_at=utcnow(), n_images=0)
                .returning(Reference.id)).scalar_one()
            conn.execute(insert(ReferenceMember), [{"reference_id": ref_id, "image_id": i} for i in members])
            built_at, n_images, outdated = None, 0, False
        else:
            ref_id, n_images, built_at, params = ref
            outdated = "categories" not in (params or {})  # built before revision 0006_qa_workflow
        n_members = conn.execute(select(func.count()).select_from(ReferenceMember)
                                 .where(ReferenceMember.reference_id == ref_id)).scalar_one()
        if built_at is None or n_members != n_images or outdated:
            _, rows = reference_rows(conn, ref_id)
            summary = build_reference(rows)
            built_at = _store_summary(conn, ref_id, summary, n_members)
            log.info("reference %s built from %d images", name, n_members)
            return ReferenceHandle(ref_id, summary, built_at)
        return ReferenceHandle(ref_id, load_reference(conn, ref_id), built_at)
