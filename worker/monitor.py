"""Reference and drift, with the database: choose reference members, build and store the summary,
compute drift per window and upsert the results.

The reference of a model version and method is the set of its ``reference_members``; members are
chosen by the settings (the first N processed images by capture time, a capture-time range, or the
images of the reference folder, source name ``reference``) and can be extended by hand (the dashboard's
"add to reference"): whenever the member count differs from the stored ``n_images``, the summary is
rebuilt. Windows and drift always use capture time (``images.captured_at``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from db import decode_heatmap, encode_heatmap, session_scope, upsert_drift_results, write_transaction
from db.models import (
    STAT_COLUMNS,
    Heatmap,
    Image,
    ImageTag,
    Prediction,
    Reference,
    ReferenceHeatmap,
    ReferenceMember,
    ReferenceStat,
)
from db.records import DriftResultRecord
from db.types import utcnow
from worker.reference import MeanHeatmap, ReferenceSummary, StatRow, StatSummary, build_reference
from worker.settings import Settings
from worker.windows import assign_windows, compute_window_drift

log = logging.getLogger(__name__)

REFERENCE_SOURCE = "reference"


@dataclass(frozen=True)
class ReferenceHandle:
    id: int
    summary: ReferenceSummary


def _rows_query() -> Select:
    stat_cols = [getattr(Heatmap, c) for c in STAT_COLUMNS]
    return (select(Image.id, Image.captured_at, Prediction.class_index, Prediction.confidence, Heatmap.raw_max,
                   Heatmap.raw_sum, Heatmap.target_logit, Heatmap.grid_h, Heatmap.grid_w, Heatmap.data, *stat_cols)
            .join(Prediction, Prediction.image_id == Image.id)
            .join(Heatmap, (Heatmap.image_id == Image.id) & Heatmap.is_primary)
            .where(Image.status == "ok"))


def _stat_rows(conn: Connection, query: Select) -> tuple[list[int], list[StatRow]]:
    """Image ids and their :class:`StatRow` (statistics, engine values, native map)."""
    ids, rows = [], []
    for r in conn.execute(query):
        m = r._mapping
        ids.append(m["id"])
        rows.append(StatRow(class_index=m["class_index"], stats={c: m[c] for c in STAT_COLUMNS},
                            confidence=m["confidence"], raw_max=m["raw_max"], raw_sum=m["raw_sum"],
                            target_logit=m["target_logit"],
                            heatmap=decode_heatmap(m["data"], m["grid_h"], m["grid_w"])))
    return ids, rows


def _rows_for(conn: Connection, base: Select, ids: Sequence[int]) -> tuple[list[int], list[StatRow]]:
    out_ids: list[int] = []
    out_rows: list[StatRow] = []
    for start in range(0, len(ids), 900):  # stay under SQLite's bound-parameter limit
        chunk_ids, chunk_rows = _stat_rows(conn, base.where(Image.id.in_(ids[start:start + 900])))
        out_ids += chunk_ids
        out_rows += chunk_rows
    return out_ids, out_rows


def _slices(conn: Connection, ids: Sequence[int], keys: Sequence[str]) -> dict[str, list[int]]:
    """``'key=value'`` → positions in ``ids`` of the images carrying that tag value."""
    if not keys or not ids:
        return {}
    position = {image_id: i for i, image_id in enumerate(ids)}
    out: dict[str, list[int]] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for image_id, key, value in conn.execute(select(ImageTag.image_id, ImageTag.key, ImageTag.value).where(
                ImageTag.image_id.in_(chunk), ImageTag.key.in_(list(keys)))):
            out.setdefault(f"{key}={value}", []).append(position[image_id])
    return out


def reference_name(model_version_id: int, method: str) -> str:
    return f"default-mv{model_version_id}-{method}"


def _choose_members(conn: Connection, settings: Settings, model_version_id: int) -> list[int] | None:
    """Member ids by the settings' rule, or None while the rule cannot be satisfied yet."""
    ref = settings.reference
    base = _rows_query().with_only_columns(Image.id).where(Image.model_version_id == model_version_id)
    if ref.kind == "first_n":
        ids = conn.execute(base.order_by(Image.captured_at, Image.id).limit(ref.first_n)).scalars().all()
        return list(ids) if len(ids) >= ref.first_n else None
    if ref.kind == "time_range":
        if ref.start is None or ref.end is None:
            raise ValueError("reference.kind = 'time_range' needs reference.start and reference.end (ISO-8601)")
        later = conn.execute(select(func.count()).select_from(Image).where(Image.captured_at >= ref.end)).scalar_one()
        if not later:
            return None  # the range may still be filling
        ids = conn.execute(base.where(Image.captured_at >= ref.start, Image.captured_at < ref.end)).scalars().all()
        return list(ids) or None
    open_ = conn.execute(select(func.count()).select_from(Image).where(
        Image.source == REFERENCE_SOURCE, Image.status.in_(("pending", "processing")))).scalar_one()
    ids = conn.execute(base.where(Image.source == REFERENCE_SOURCE)).scalars().all()
    return list(ids) if ids and not open_ else None


def _store_summary(conn: Connection, ref_id: int, summary: ReferenceSummary, n_members: int) -> None:
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
    conn.execute(update(Reference).where(Reference.id == ref_id)
                 .values(built_at=utcnow(), n_images=n_members, params=params))


def load_reference(conn: Connection, ref_id: int) -> ReferenceSummary:
    params = conn.execute(select(Reference.params).where(Reference.id == ref_id)).scalar_one() or {}
    stats = {(r.statistic, r.class_index): StatSummary(r.statistic, r.class_index, r.n, r.mean, r.std,
                                                       np.asarray(r.values, dtype=float))
             for r in conn.execute(select(ReferenceStat).where(ReferenceStat.reference_id == ref_id))}
    maps = {r.class_index: MeanHeatmap(r.n, 0, decode_heatmap(r.data, r.grid_h, r.grid_w).astype(float))
            for r in conn.execute(select(ReferenceHeatmap).where(ReferenceHeatmap.reference_id == ref_id))}
    counts = {int(c): int(n) for c, n in params.get("class_counts", {}).items()}
    return ReferenceSummary(class_counts=counts, stats=stats, heatmaps=maps)


def ensure_reference(engine: Engine, settings: Settings, model_version_id: int, method: str) -> ReferenceHandle | None:
    """The current reference summary, creating or rebuilding it when needed; None until it can exist."""
    name = reference_name(model_version_id, method)
    with write_transaction(engine) as conn:
        ref = conn.execute(select(Reference.id, Reference.n_images, Reference.built_at)
                           .where(Reference.name == name)).one_or_none()
        if ref is None:
            members = _choose_members(conn, settings, model_version_id)
            if members is None:
                return None
            ref_id = conn.execute(insert(Reference).values(
                name=name, kind=settings.reference.kind, params=settings.reference.model_dump(mode="json"),
                model_version_id=model_version_id, method=method, created_at=utcnow(), n_images=0)
                .returning(Reference.id)).scalar_one()
            conn.execute(insert(ReferenceMember), [{"reference_id": ref_id, "image_id": i} for i in members])
            built_at, n_images = None, 0
        else:
            ref_id, n_images, built_at = ref
        n_members = conn.execute(select(func.count()).select_from(ReferenceMember)
                                 .where(ReferenceMember.reference_id == ref_id)).scalar_one()
        if built_at is None or n_members != n_images:
            member_ids = select(ReferenceMember.image_id).where(ReferenceMember.reference_id == ref_id)
            _, rows = _stat_rows(conn, _rows_query().where(Image.id.in_(member_ids)))
            summary = build_reference(rows)
            _store_summary(conn, ref_id, summary, n_members)
            log.info("reference %s built from %d images", name, n_members)
            return ReferenceHandle(ref_id, summary)
        return ReferenceHandle(ref_id, load_reference(conn, ref_id))


def window_kind_label(settings: Settings) -> str:
    d = settings.drift
    return f"count:{d.window_count}" if d.window == "count" else d.window


def _slice_references(engine: Engine, handle: ReferenceHandle, keys: Sequence[str],
                      min_samples: int) -> dict[str, ReferenceSummary]:
    """A reference per tag value, from the reference members carrying it (slices with too few are left out)."""
    member_ids = select(ReferenceMember.image_id).where(ReferenceMember.reference_id == handle.id)
    with engine.connect() as conn:
        ids, rows = _stat_rows(conn, _rows_query().where(Image.id.in_(member_ids)))
        groups = _slices(conn, ids, keys)
    return {name: build_reference([rows[i] for i in members]) for name, members in groups.items()
            if len(members) >= min_samples}


def recompute_drift(engine: Engine, settings: Settings, handle: ReferenceHandle, model_version_id: int,
                    since: dt.datetime | None = None) -> int:
    """Drift for every window (or those holding images processed after ``since``), overall and per slice
    (each value of the tags in ``drift.slice_tags``, against the reference images of the same value);
    returns the number of result rows written."""
    d = settings.drift
    base = _rows_query().where(Image.model_version_id == model_version_id)
    with engine.connect() as conn:
        index = conn.execute(select(Image.id, Image.captured_at, Image.processed_at)
                             .where(Image.status == "ok", Image.model_version_id == model_version_id)
                             .order_by(Image.captured_at, Image.id)).all()
    if not index:
        return 0
    windows, labels = assign_windows([r.captured_at for r in index], d.window, d.window_count)
    touched = set(range(len(windows))) if since is None else {
        int(labels[i]) for i, r in enumerate(index) if r.processed_at is not None and r.processed_at > since}
    statistics = [s for s in d.statistics if handle.summary.stat(s) is not None]
    slice_refs = _slice_references(engine, handle, d.slice_tags, d.min_samples) if touched else {}
    options = {"statistics": statistics, "thresholds": {"heatmap_correlation": d.heatmap_correlation_min},
               "min_samples": d.min_samples}
    kind = window_kind_label(settings)
    written = 0
    for w in sorted(touched):
        window = windows[w]
        with engine.connect() as conn:
            ids, rows = _rows_for(conn, base, [index[int(i)].id for i in np.flatnonzero(labels == w)])
            groups = _slices(conn, ids, d.slice_tags)
        results = [("", r) for r in compute_window_drift(handle.summary, rows, **options)]  # type: ignore[arg-type]
        for name, members in sorted(groups.items()):
            ref = slice_refs.get(name)
            if ref is not None and len(members) >= d.min_samples:
                subset = [rows[i] for i in members]
                results += [(name, r) for r in compute_window_drift(
                    ref, subset, per_class=False, **options)]  # type: ignore[arg-type]
        out = [DriftResultRecord(reference_id=handle.id, window_kind=kind, window_start=window.start,
                                 window_end=window.end, statistic=r.statistic, class_index=r.class_index,
                                 test=r.test, score=r.score, threshold=r.threshold, drifted=r.drifted,
                                 n_reference=r.n_reference, n_current=r.n_current, slice=name)
               for name, r in results]
        with session_scope(engine, write=True) as session:
            written += upsert_drift_results(session, out)
    return written
