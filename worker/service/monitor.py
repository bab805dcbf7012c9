"""Keeping drift current: which windows to recompute, the per-slice references, the tests of each window.

Storage is :mod:`db.monitoring` (reference members and summaries, window rows, slices) and
:func:`db.writes.upsert_drift_results`; the maths is :mod:`camwatch.monitoring`. Windows use capture time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import numpy as np
from sqlalchemy.engine import Engine

from camwatch.conventions import ALL_IMAGES
from camwatch.monitoring.reference import ReferenceSummary, build_reference
from camwatch.monitoring.windows import assign_windows, compute_window_drift
from camwatch.settings import Settings
from db import session_scope, upsert_drift_results
from db.monitoring import ReferenceHandle, image_slices, processed_index, reference_rows, window_rows
from db.records import DriftResultRecord

log = logging.getLogger(__name__)


def _slice_references(engine: Engine, handle: ReferenceHandle, keys: Sequence[str],
                      min_samples: int) -> dict[str, ReferenceSummary]:
    """A reference per tag value, from the reference members carrying it (slices with too few are left out)."""
    with engine.connect() as conn:
        ids, rows = reference_rows(conn, handle.id)
        groups = image_slices(conn, ids, keys)
    return {name: build_reference([rows[i] for i in members]) for name, members in groups.items()
            if len(members) >= min_samples}


def recompute_drift(engine: Engine, settings: Settings, handle: ReferenceHandle, model_version_id: int,
                    since: dt.datetime | None = None) -> int:
    """Drift for every window (or those holding images processed after ``since``), overall and per slice
    (each value of the tags in ``drift.slice_tags``, against the reference images of the same value);
    returns the number of result rows written."""
    d = settings.drift
    index = processed_index(engine, model_version_id)
    if not index:
        return 0
    windows, labels = assign_windows([r.captured_at for r in index], d.window, d.window_count)
    touched = set(range(len(windows))) if since is None else {
        int(labels[i]) for i, r in enumerate(index) if r.processed_at is not None and r.processed_at > since}
    statistics = [s for s in d.statistics if handle.summary.stat(s) is not None]
    slice_refs = _slice_references(engine, handle, d.slice_tags, d.min_samples) if touched else {}
    options = {"statistics": statistics, "thresholds": {"heatmap_correlation": d.heatmap_correlation_min},
               "min_samples": d.min_samples}
    written = 0
    for w in sorted(touched):
        window = windows[w]
        with engine.connect() as conn:
            ids, rows = window_rows(conn, model_version_id, [index[int(i)].id for i in np.flatnonzero(labels == w)])
            groups = image_slices(conn, ids, d.slice_tags)
        results = [(ALL_IMAGES, r) for r in compute_window_drift(handle.summary, rows, **options)]  # type: ignore[arg-type]
        for name, members in sorted(groups.items()):
            ref = slice_refs.get(name)
            if ref is not None and len(members) >= d.min_samples:
                subset = [rows[i] for i in members]
                results += [(name, r) for r in compute_window_drift(
                    ref, subset, per_class=False, **options)]  # type: ignore[arg-type]
        out = [DriftResultRecord(reference_id=handle.id, window_kind=d.window_label, window_start=window.start,
                                 window_end=window.end, statistic=r.statistic, class_index=r.class_index,
                                 test=r.test, score=r.score, threshold=r.threshold, drifted=r.drifted,
                                 n_reference=r.n_reference, n_current=r.n_current, slice=name)
               for name, r in results]
        with session_scope(engine, write=True) as session:
            written += upsert_drift_results(session, out)
    return written
