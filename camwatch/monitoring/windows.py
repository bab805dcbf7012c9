"""Windows of production images and the drift of each window against the reference.

Time windows floor capture times to the hour or the day in UTC and are half-open ``[start, end)``. Count
windows are consecutive chunks of ``count`` images in capture-time order (stable for equal times); their
``start``/``end`` are the first and last capture time in the chunk (closed), and the last chunk is kept but
marked ``partial`` when it holds fewer than ``count`` images. Whether the latest *time* window is still
filling is for the caller to decide (it knows the clock). Naive datetimes and ``datetime64`` values are
taken as UTC; aware datetimes are converted. The arithmetic cannot overflow: it runs on ``datetime64``
(about 290,000 years either way), and a window bound beyond the years 1..9999 of :class:`datetime` is
clamped to :data:`FIRST` / :data:`LAST` (a window of 9999-12-31 ends at ``LAST``, not in year 10000).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import numpy as np

from camwatch.conventions import ALL_CLASSES, WindowKind
from camwatch.heads import mix_labels
from camwatch.monitoring.calibration import (
    DEFAULT_FDR,
    DEFAULT_MIN_EFFECT,
    DEFAULT_MIN_MIX_EFFECT,
    MIN_CHUNKS,
    calibrate_window,
    chunk_threshold,
    class_mix_test,
    normalised_wasserstein,
)
from camwatch.monitoring.drift import DEFAULT_MIN_SAMPLES, DriftOutcome, Kind, default_test_for, get_test
from camwatch.monitoring.heatmaps import MeanHeatmap, normalised_stack, row_correlations
from camwatch.monitoring.reference import ATTENTION_CORRELATION, ReferenceSummary, StatRow, value_matrix
from camwatch.statistics.registry import CATEGORIES

logger = logging.getLogger(__name__)

PREDICTED_CLASS = "predicted_class"
HEATMAP_CORRELATION = "heatmap_correlation"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The earliest and latest window bounds (:class:`datetime`'s range, in UTC).
FIRST = datetime.min.replace(tzinfo=UTC)
LAST = datetime.max.replace(tzinfo=UTC)
_FIRST_US = np.datetime64(FIRST.replace(tzinfo=None), "us")
_LAST_US = np.datetime64(LAST.replace(tzinfo=None), "us")
_FLOOR_UNIT = {"hour": "datetime64[h]", "day": "datetime64[D]"}
_STEP = {"hour": np.timedelta64(1, "h"), "day": np.timedelta64(1, "D")}


@dataclass(frozen=True)
class Window:
    """One window; ``index`` is its position in time order, ``n`` the number of images in it."""

    kind: WindowKind
    index: int
    start: datetime
    end: datetime
    n: int
    partial: bool = False


@dataclass(frozen=True, kw_only=True)
class DriftRecord(DriftOutcome):
    """One drift test of one window: a :class:`DriftOutcome` for a statistic (or ``predicted_class`` /
    ``heatmap_correlation``) of one class (``-1``: all images), with its calibrated decision
    (:mod:`camwatch.monitoring.calibration`): ``drifted`` is the final decision (``decision == "drifted"``),
    ``raw_drifted`` the test's own (score against threshold)."""

    statistic: str
    class_index: int
    raw_drifted: bool = False
    rule: str = "fdr_effect"
    effect_threshold: float | None = None
    q_value: float | None = None
    fdr: float | None = None
    decision: str = "no_drift"

    @classmethod
    def from_outcome(cls, statistic: str, class_index: int, outcome: DriftOutcome, *, rule: str = "fdr_effect",
                     effect_threshold: float | None = None) -> DriftRecord:
        values = {f.name: getattr(outcome, f.name) for f in fields(DriftOutcome)}
        values.update(drifted=False, raw_drifted=outcome.drifted)
        return cls(statistic=statistic, class_index=class_index, rule=rule, effect_threshold=effect_threshold,
                   decision="not_enough_data" if outcome.score is None else "no_drift", **values)


def _to_utc64(times: np.ndarray | Sequence[datetime]) -> np.ndarray:
    """Capture times as ``datetime64[us]`` in UTC."""
    arr = np.asarray(times)
    if arr.dtype.kind == "M":
        out = arr.astype("datetime64[us]")
    else:
        converted = []
        for t in arr.ravel().tolist():
            if not isinstance(t, datetime):
                raise TypeError(f"capture time {t!r} is neither a datetime nor a datetime64")
            naive = np.datetime64(t.replace(tzinfo=None), "us")
            offset = t.utcoffset() if t.tzinfo is not None else None
            # numpy subtracts the offset without the overflow datetime.astimezone raises near year 1 / 9999
            converted.append(naive - np.timedelta64(offset, "us") if offset else naive)
        out = np.asarray(converted, dtype="datetime64[us]")
    out = out.ravel()
    if np.isnat(out).any():
        raise ValueError(f"{int(np.isnat(out).sum())} capture times are NaT")
    return out


def _to_datetime(t: np.datetime64) -> datetime:
    """A UTC :class:`datetime`, clamped to ``[FIRST, LAST]``."""
    us = t.astype("datetime64[us]")
    if us <= _FIRST_US:
        return FIRST
    if us >= _LAST_US:
        return LAST
    return _EPOCH + timedelta(microseconds=int(us.astype(np.int64)))


def assign_windows(
    times: np.ndarray | Sequence[datetime], kind: WindowKind, count: int = 500
) -> tuple[list[Window], np.ndarray]:
    """Group capture times into windows. Returns ``(windows, labels)``: windows in time order and, for
    each input time, the index of its window in that list."""
    t = _to_utc64(times)
    if kind in _FLOOR_UNIT:
        starts, labels, sizes = np.unique(
            t.astype(_FLOOR_UNIT[kind]), return_inverse=True, return_counts=True
        )
        step = _STEP[kind]
        windows = [
            Window(kind, i, _to_datetime(s), _to_datetime(s + step), int(n))
            for i, (s, n) in enumerate(zip(starts, sizes, strict=True))
        ]
        return windows, labels.ravel().astype(np.int64)
    if kind != "count":
        raise ValueError(f"unknown window kind {kind!r}; expected 'hour', 'day' or 'count'")
    if count < 1:
        raise ValueError(f"count windows need count >= 1, got {count}")
    order = np.argsort(t, kind="stable")
    labels = np.empty(t.size, dtype=np.int64)
    labels[order] = np.arange(t.size) // count
    windows = []
    for i, first in enumerate(range(0, t.size, count)):
        chunk = order[first : first + count]
        windows.append(
            Window(
                "count",
                i,
                _to_datetime(t[chunk[0]]),
                _to_datetime(t[chunk[-1]]),
                int(chunk.size),
                partial=chunk.size < count,
            )
        )
    return windows, labels


def _numeric_effect(ref: np.ndarray, cur: np.ndarray) -> float:
    return normalised_wasserstein(ref, cur)[0]


def _mix_effect(ref: np.ndarray, cur: np.ndarray) -> float:
    return class_mix_test(ref, cur)[1]


def _shuffled(labels: np.ndarray) -> np.ndarray:
    """Reference labels in a fixed random order (they are stored grouped by label), for reference chunks."""
    return labels[np.random.default_rng(0).permutation(labels.size)]


def _record(name: str, class_index: int, outcome: DriftOutcome, reference_values: np.ndarray, min_effect: float,
            chunks: bool, effect: Callable[[np.ndarray, np.ndarray], float]) -> DriftRecord:
    """A record decided by FDR + effect, or, for ``chunks``, by a threshold learned from reference chunks
    of the window's size (FDR + effect when the reference is too short for :data:`MIN_CHUNKS` chunks)."""
    if chunks and outcome.score is not None:
        ref = np.asarray(reference_values)
        if ref.dtype.kind == "f":
            ref = ref[np.isfinite(ref)]
        learned = chunk_threshold(ref, min(outcome.n_current, ref.size // MIN_CHUNKS), effect)
        if learned is not None:
            return DriftRecord.from_outcome(name, class_index, outcome, rule="reference_chunks",
                                            effect_threshold=learned[0])
    return DriftRecord.from_outcome(name, class_index, outcome, effect_threshold=min_effect)


def _check_kind(key: str, kind: Kind, statistic: str) -> str:
    if get_test(key).kind != kind:
        raise ValueError(f"drift test {key!r} is {get_test(key).kind}; {statistic!r} needs a {kind} test")
    return key


def compute_window_drift(
    reference: ReferenceSummary,
    window_rows: Sequence[StatRow],
    *,
    statistics: Sequence[str] | None = None,
    tests: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    per_class: bool = True,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    fdr: float = DEFAULT_FDR,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_mix_effect: float = DEFAULT_MIN_MIX_EFFECT,
    chunk_statistics: Sequence[str] = (),
) -> list[DriftRecord]:
    """Drift of one window against the reference, calibrated over the records returned
    (:func:`~camwatch.monitoring.calibration.calibrate_window` with ``fdr``; callers that test several
    slices of a window calibrate the union again). Effect thresholds: ``min_effect`` for numeric
    statistics, ``min_mix_effect`` for label mixes, ``1 - threshold`` for ``heatmap_correlation`` (decided
    on its threshold alone); statistics in ``chunk_statistics`` (or ``predicted_class``) are decided by a
    threshold learned from reference chunks instead.

    For all images (class ``-1``) and, with ``per_class``, for every class with at least ``min_samples``
    images in the window and in the reference: each statistic (default: all of the reference's, including
    :data:`~camwatch.monitoring.reference.ATTENTION_CORRELATION` measured against that class's reference mean map) with
    ``tests[statistic]`` or :func:`~camwatch.monitoring.drift.default_test_for`, and ``heatmap_correlation`` of the window's
    mean map with the reference's. For all images only: the predicted-class mix (``tests["predicted_class"]``,
    default ``jensen_shannon``; the positive labels of multi-label rows, see
    :func:`~camwatch.heads.mix_labels`) and the mix of each categorical property the reference keeps
    (``reference.categories``, e.g. ``camera_model``; ``tests[name]``, default the property's own test and
    threshold in :data:`~camwatch.statistics.registry.CATEGORIES`). ``thresholds`` maps test keys to
    thresholds that replace the defaults.
    Classes with too few images are left out; the overall records are always returned (possibly "not
    enough data"). ``n_reference`` of a statistic's record is the size of the reference *sample* the test
    used (at most the reference's ``max_values``), and the default test is chosen from the full ``n``.
    """
    names = list(reference.statistics if statistics is None else statistics)
    missing = [s for s in names if reference.stat(s) is None]
    if missing:
        raise ValueError(f"statistics {missing} are not in the reference; it has {reference.statistics}")
    tests = {} if tests is None else dict(tests)
    thresholds = {} if thresholds is None else dict(thresholds)
    targets = {*names, PREDICTED_CLASS, HEATMAP_CORRELATION, *reference.categories}
    if unknown := sorted(set(tests) - targets):
        raise ValueError(
            f"tests given for {unknown}, which are not tested here; expected some of {sorted(targets)}"
        )
    for key in [*tests.values(), *thresholds]:
        get_test(key)  # raises for an unknown test key
    classes = np.fromiter((row.class_index for row in window_rows), dtype=np.int64, count=len(window_rows))
    columns = value_matrix(window_rows, names)
    maps = [row.heatmap for row in window_rows]
    groups: dict[int, np.ndarray] = {ALL_CLASSES: np.arange(len(window_rows))}
    if per_class:
        labels, counts = np.unique(classes, return_counts=True)
        for c, n in zip(labels.tolist(), counts.tolist(), strict=True):
            if n >= min_samples and reference.n_images(c) >= min_samples:
                groups[c] = np.flatnonzero(classes == c)

    records: list[DriftRecord] = []
    for c, idx in groups.items():
        ref_map = reference.heatmaps.get(c)
        attention = np.full(idx.size, np.nan)
        window_mean: MeanHeatmap | None = None
        if ref_map is not None:
            stack, kept, n_zero = normalised_stack([maps[i] for i in idx], ref_map.data.shape)
            if kept.size:
                attention[kept] = row_correlations(stack, ref_map.data)
                window_mean = MeanHeatmap(int(kept.size), n_zero, stack.mean(axis=0))
        for j, name in enumerate(names):
            summary = reference.stat(name, c)
            if summary is None:
                continue
            key = _check_kind(tests.get(name) or default_test_for("numeric", summary.n), "numeric", name)
            current = attention if name == ATTENTION_CORRELATION else columns[idx, j]
            outcome = get_test(key).run(summary.values, current, thresholds.get(key), min_samples=min_samples)
            records.append(_record(name, c, outcome, summary.values, min_effect, name in chunk_statistics,
                                   _numeric_effect))
        if ref_map is not None:
            key = _check_kind(
                tests.get(HEATMAP_CORRELATION, HEATMAP_CORRELATION), "heatmap", HEATMAP_CORRELATION
            )
            current_maps: MeanHeatmap | list[np.ndarray] = [] if window_mean is None else window_mean
            outcome = get_test(key).run(ref_map, current_maps, thresholds.get(key), min_samples=min_samples)
            records.append(DriftRecord.from_outcome(HEATMAP_CORRELATION, c, outcome, rule="threshold",
                                                    effect_threshold=1.0 - outcome.threshold))
    key = _check_kind(
        tests.get(PREDICTED_CLASS) or default_test_for("categorical", reference.n),
        "categorical",
        PREDICTED_CLASS,
    )
    mix = np.asarray([c for row in window_rows for c in mix_labels(row.class_index, row.labels)], dtype=np.int64)
    expected_mix = reference.class_labels()
    outcome = get_test(key).run(expected_mix, mix, thresholds.get(key), min_samples=min_samples)
    records.append(_record(PREDICTED_CLASS, ALL_CLASSES, outcome, _shuffled(expected_mix), min_mix_effect,
                           PREDICTED_CLASS in chunk_statistics, _mix_effect))
    for name in sorted(reference.categories):
        expected = reference.category_labels(name)
        definition = CATEGORIES.get(name)
        key = _check_kind(tests.get(name) or (definition.test if definition else
                                              default_test_for("categorical", expected.size)), "categorical", name)
        threshold = definition.threshold if definition is not None and key == definition.test else thresholds.get(key)
        current = np.asarray([row.category(name) for row in window_rows], dtype=object)
        outcome = get_test(key).run(expected, current, threshold, min_samples=min_samples)
        records.append(_record(name, ALL_CLASSES, outcome, _shuffled(expected), min_mix_effect,
                               name in chunk_statistics, _mix_effect))
    records = calibrate_window(records, fdr)
    n_drifted = sum(r.drifted for r in records)
    logger.debug(
        "window of %d images: %d drift records, %d drifted", len(window_rows), len(records), n_drifted
    )
    return records
