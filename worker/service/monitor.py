"""Keeping drift current: which windows to recompute, the per-slice references, the tests of each window.

Storage is :mod:`db.monitoring` (reference members and summaries, window rows, slices),
:mod:`db.drift_incremental` (the drift state and the indexed queries of a pass) and
:func:`db.writes.upsert_drift_results`; the maths is :mod:`camwatch.monitoring`. Windows use capture time.

Incremental passes: ``drift_state`` keeps, per reference and window kind, the processed-at watermark of
the last pass and what it was computed against (the reference's build time, a key of the drift
settings). A pass reads the capture times of the images processed after the watermark (minus
``drift.watermark_overlap_seconds``, for other workers' commits racing the pass) and recomputes only the
windows holding them, so its cost follows the new images and the size of the windows they fall into, not
the history. The first pass (no state), a rebuilt reference, changed drift settings and ``camwatch drift``
(``full=True``) recompute every window. The state lives in the database, so a restarted worker goes on
incrementally.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from camwatch.conventions import ALL_IMAGES
from camwatch.monitoring.calibration import calibrate_window
from camwatch.monitoring.reference import ReferenceSummary, build_reference
from camwatch.monitoring.windows import DriftRecord, assign_windows, compute_window_drift
from camwatch.settings import DriftSettings, Settings
from db import session_scope, upsert_drift_results
from db.drift_incremental import (
    count_captured_before,
    latest_processed_at,
    ordered_from,
    processed_since,
    read_drift_state,
    window_image_ids,
    write_drift_state,
)
from db.monitoring import ReferenceHandle, image_slices, processed_index, reference_rows, window_rows
from db.records import DriftResultRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowSpan:
    """One window to recompute: its bounds (as stored) and its images in capture order."""

    start: dt.datetime
    end: dt.datetime
    ids: list[int]


@dataclass(frozen=True)
class DriftPass:
    """What one pass did: result rows written, the starts of the windows recomputed, and whether it was a
    full recompute."""

    written: int
    starts: tuple[dt.datetime, ...]
    full: bool

    @property
    def windows(self) -> int:
        return len(self.starts)


def settings_key(d: DriftSettings) -> str:
    """A key of every drift setting that changes results (not the pass cadence): a change means a full
    recompute."""
    data = d.model_dump(mode="json", exclude={"every_batches", "watermark_overlap_seconds"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def _slice_references(engine: Engine, handle: ReferenceHandle, keys: Sequence[str],
                      min_samples: int) -> dict[str, ReferenceSummary]:
    """A reference per tag value, from the reference members carrying it (slices with too few are left out)."""
    with engine.connect() as conn:
        ids, rows = reference_rows(conn, handle.id)
        groups = image_slices(conn, ids, keys)
    return {name: build_reference([rows[i] for i in members]) for name, members in groups.items()
            if len(members) >= min_samples}


def _all_windows(engine: Engine, d: DriftSettings, model_version_id: int, by_results: bool) -> list[WindowSpan]:
    index = processed_index(engine, model_version_id, by_results)
    if not index:
        return []
    windows, labels = assign_windows([r.captured_at for r in index], d.window, d.window_count)
    members: list[list[int]] = [[] for _ in windows]
    for i, label in enumerate(labels.tolist()):
        members[label].append(index[i].id)
    return [WindowSpan(w.start, w.end, ids) for w, ids in zip(windows, members, strict=True)]


def _touched_windows(engine: Engine, d: DriftSettings, model_version_id: int,
                     captured: Sequence[dt.datetime], by_results: bool) -> list[WindowSpan]:
    """The windows holding the given capture times, each with all its held images (indexed queries)."""
    if not captured:
        return []
    if d.window != "count":
        spans, _ = assign_windows(list(captured), d.window)
        return [WindowSpan(w.start, w.end, window_image_ids(engine, model_version_id, w.start, w.end, by_results))
                for w in spans]
    # count windows: every chunk from the one holding the earliest touched image on
    first = (count_captured_before(engine, model_version_id, min(captured), by_results)
             // d.window_count) * d.window_count
    rows = ordered_from(engine, model_version_id, first, by_results)
    windows, labels = assign_windows([c for _, c in rows], "count", d.window_count)
    members: list[list[int]] = [[] for _ in windows]
    for (image_id, _), label in zip(rows, labels.tolist(), strict=True):
        members[label].append(image_id)
    return [WindowSpan(w.start, w.end, ids) for w, ids in zip(windows, members, strict=True)]


def _window_results(engine: Engine, settings: Settings, handle: ReferenceHandle, model_version_id: int,
                    span: WindowSpan, slice_refs: dict[str, ReferenceSummary]) -> list[DriftResultRecord]:
    """The calibrated results of one window: overall and per slice, one BH family."""
    d = settings.drift
    options = {"statistics": [s for s in d.statistics if handle.summary.stat(s) is not None],
               "thresholds": {"heatmap_correlation": d.heatmap_correlation_min}, "min_samples": d.min_samples,
               "fdr": d.fdr, "min_effect": d.min_effect, "min_mix_effect": d.min_mix_effect,
               "chunk_statistics": d.chunk_statistics, "tests": d.tests}
    with engine.connect() as conn:
        ids, rows = window_rows(conn, model_version_id, span.ids)
        groups = image_slices(conn, ids, d.slice_tags)
    results: list[tuple[str, DriftRecord]] = [
        (ALL_IMAGES, r) for r in compute_window_drift(handle.summary, rows, **options)]  # type: ignore[arg-type]
    for name, members in sorted(groups.items()):
        ref = slice_refs.get(name)
        if ref is not None:  # a slice with too few images this window: stored as "not enough data"
            results += [(name, r) for r in compute_window_drift(
                ref, [rows[i] for i in members], per_class=False, **options)]  # type: ignore[arg-type]
    calibrated = calibrate_window([r for _, r in results], d.fdr, groups=[name for name, _ in results])
    return [DriftResultRecord(
        reference_id=handle.id, window_kind=d.window_label, window_start=span.start, window_end=span.end,
        statistic=r.statistic, class_index=r.class_index, test=r.test, score=r.score, threshold=r.threshold,
        drifted=r.drifted, n_reference=r.n_reference, n_current=r.n_current, slice=name, decision=r.decision,
        decision_rule=r.rule, raw_drifted=r.raw_drifted if r.score is not None else None, p_value=r.p_value,
        q_value=r.q_value, fdr=r.fdr, effect_size=r.effect_size, effect_threshold=r.effect_threshold)
        for (name, _), r in zip(results, calibrated, strict=True)]


def drift_pass(engine: Engine, settings: Settings, handle: ReferenceHandle, model_version_id: int, *,
               full: bool = False, by_results: bool = False) -> DriftPass:
    """One drift pass (module docstring): the windows touched since the last pass, or all of them; the
    version's images are those it processed as the primary model, or with ``by_results`` (a shadow model,
    ``camwatch reprocess``, ``camwatch drift``) every image holding a result of it."""
    d = settings.drift
    key = settings_key(d)
    state = read_drift_state(engine, handle.id, d.window_label)
    full = full or state is None or state.watermark is None or state.settings_key != key \
        or state.reference_built_at != handle.built_at
    if full:
        watermark = latest_processed_at(engine, model_version_id, by_results)
        spans = _all_windows(engine, d, model_version_id, by_results)
    else:
        assert state is not None and state.watermark is not None
        new = processed_since(engine, model_version_id,
                              state.watermark - dt.timedelta(seconds=d.watermark_overlap_seconds), by_results)
        watermark = max([state.watermark, *(p for _, p in new)])
        spans = _touched_windows(engine, d, model_version_id, [c for c, _ in new], by_results)
    slice_refs = _slice_references(engine, handle, d.slice_tags, d.min_samples) if spans else {}
    written = 0
    for span in spans:
        out = _window_results(engine, settings, handle, model_version_id, span, slice_refs)
        with session_scope(engine, write=True) as session:
            written += upsert_drift_results(session, out)
    write_drift_state(engine, handle.id, d.window_label, watermark=watermark, reference_built_at=handle.built_at,
                      settings_key=key, windows=len(spans))
    log.debug("drift pass (%s): %d windows, %d results", "full" if full else "incremental", len(spans), written)
    return DriftPass(written, tuple(s.start for s in spans), full)


def recompute_drift(engine: Engine, settings: Settings, handle: ReferenceHandle, model_version_id: int, *,
                    full: bool = False, by_results: bool = False) -> int:
    """Drift for the windows touched since the last pass (or, with ``full``, every window), overall and per
    slice (each value of the tags in ``drift.slice_tags``, against the reference images of the same value);
    returns the number of result rows written."""
    return drift_pass(engine, settings, handle, model_version_id, full=full, by_results=by_results).written

