"""Registered drift tests: compare a window of production values with the reference.

Tests are registered under stable string keys (stored in the database; never rename one) in
:data:`DRIFT_TESTS`. Each has a ``kind`` (``numeric``, ``categorical`` or ``heatmap``), a default threshold
and a direction: p-values drift *below* the threshold, distances *above* it, so every
:class:`DriftOutcome` carries an explicit ``drifted``. The formula of each test is the docstring of its
score function (:attr:`DriftTest.formula`).

Conventions
-----------
* Missing values (``None``, NaN, ±inf; for heatmaps: absent or all-zero maps) are dropped before testing;
  the number dropped is reported in ``detail``.
* Minimum sample size: with fewer than ``min_samples`` (default :data:`DEFAULT_MIN_SAMPLES` = 30) values left
  in the current window *or* the reference, the test is not run: ``score=None``, ``drifted=False`` and
  ``detail`` starts with ``"not enough data (n=…"``. At n = 30 the 5% two-sample KS critical value is
  ``1.36/√30 ≈ 0.25``, so only shifts of about 0.7σ and more are visible; 10-bin PSI and label shares are
  dominated by sampling noise below that. A silent "not enough data" is better than a false alarm.
* Defaults follow Evidently for numeric statistics: KS (p < 0.05) up to 1000 reference values, else the
  Wasserstein distance normalised by the reference std (> 0.1); for label mixes ``class_mix`` (a chi-square
  test on classes pooled to those with enough reference mass, unbiased on small windows).
* Every run also reports a **p-value** and an **effect size** whatever the test's own score, for the
  calibrated decision of :mod:`camwatch.monitoring.calibration`: numeric statistics the KS p-value and the
  normalised Wasserstein distance, label mixes the ``class_mix`` p-value and the total variation distance
  of the pooled shares, heatmaps no p-value and ``1 - r``. ``drifted`` of a :class:`DriftOutcome` is the
  test's own decision (score against threshold); the stored decision is calibrated per window.
* Jensen–Shannon on predicted classes has a noise floor: two samples of the *same* distribution are at
  distance ≈ ``sqrt((k − 1)(1/n_ref + 1/n_cur) / (8 ln 2))`` for k classes (reported in ``detail``). Measured
  (20 draws, uniform classes, 50 000 reference labels): k = 10, n_cur = 500 → 0.057 (fine under 0.1), but
  k = 100 → 0.19 and k = 1000 → 0.65: for many-class models use ``chi2`` (a calibrated p-value) instead.
* ``heatmap_correlation`` drifts below r = 0.9 (:data:`DEFAULT_HEATMAP_CORRELATION`). Measured on synthetic
  7x7 maps (Gaussian blob, centre jittered by 1 cell, random width and gain, additive noise): the mean of
  30 maps correlated with the mean of 5000 below 0.9 in 1.1% of 1000 draws (never below 0.96 in 200 draws
  at n = 100), while moving the blob by one cell gave a median r of 0.75 and by two cells 0.30. It is a
  setting: pass ``threshold=`` (or ``thresholds`` in :func:`camwatch.monitoring.windows.compute_window_drift`).
"""

from __future__ import annotations

import inspect
import logging
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from scipy import stats
from scipy.spatial import distance

from camwatch.monitoring.calibration import class_mix_test, normalised_wasserstein
from camwatch.monitoring.heatmaps import MeanHeatmap, heatmap_correlation, mean_normalised_heatmap

logger = logging.getLogger(__name__)

Kind = Literal["numeric", "categorical", "heatmap"]
Direction = Literal["<", ">", ">="]
#: What a score is, for drawing it so that up is worse (:meth:`DriftTest.strength`).
Scale = Literal["p_value", "distance", "similarity"]
#: Smallest p-value drawn: ``-log10`` of anything smaller (or of 0) is drawn as 300.
P_FLOOR = 1e-300

DEFAULT_MIN_SAMPLES = 30
KS_MAX_REFERENCE = 1000
PSI_BINS = 10
PSI_EPSILON = 1e-4
DEFAULT_HEATMAP_CORRELATION = 0.9

_COMPARE: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class DriftOutcome:
    """Result of one test. ``score`` is ``None`` when the test was not run (not enough data); ``drifted``
    is the test's own decision (``score <drift_if> threshold``); ``p_value``/``effect_size`` feed the
    calibrated decision (module docstring)."""

    test: str
    score: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    detail: str
    p_value: float | None = None
    effect_size: float | None = None


class _HasDrift(Protocol):
    @property
    def score(self) -> float | None: ...

    @property
    def drifted(self) -> bool: ...


# ---------------------------------------------------------------------------------------- score functions


def _ks(ref: np.ndarray, cur: np.ndarray) -> tuple[float, str]:
    """Two-sample Kolmogorov–Smirnov: ``D = sup_x |F_ref(x) − F_cur(x)|``; score = the p-value of D
    (``scipy.stats.ks_2samp``, method "auto": exact for small samples, asymptotic otherwise).
    Drifted when ``p < threshold`` (default 0.05)."""
    res = stats.ks_2samp(ref, cur)
    return float(res.pvalue), f"D={float(res.statistic):.4f}, p={float(res.pvalue):.3g}"


def _wasserstein(ref: np.ndarray, cur: np.ndarray) -> tuple[float, str]:
    """Normalised Wasserstein-1 distance: ``W1 = ∫ |F_ref(x) − F_cur(x)| dx``, score = ``W1 / σ_ref`` with
    ``σ_ref`` the population std (ddof 0) of the reference (Evidently's convention). A constant reference
    (``σ_ref = 0``) is divided by the std of reference ∪ current instead, which is > 0 whenever W1 > 0 (both
    constant and equal: score 0). Drifted when ``score > threshold`` (default 0.1)."""
    score, sigma, pooled = normalised_wasserstein(ref, cur)
    if not pooled:
        return score, f"W1={score * sigma:.4g}, reference std={sigma:.4g}"
    return score, f"W1={score * sigma:.4g}, reference is constant: normalised by the pooled std {sigma:.4g}"


def _psi(ref: np.ndarray, cur: np.ndarray) -> tuple[float, str]:
    """Population stability index ``PSI = Σ_b (c_b − r_b) · ln(c_b / r_b)``, ``r_b``/``c_b`` the shares of
    reference/current values in bin b. Bins are right-closed at the reference deciles:
    ``(−∞, q.1], (q.1, q.2], …, (q.9, ∞)``, the deciles being observed reference values (numpy's "lower"
    method); repeated deciles merge, so a discrete statistic gets one bin per value (plus one above the
    maximum). An empty bin's share becomes ε = 1e-4 (no renormalisation) so the log stays finite.
    Convention: < 0.1 stable, 0.1–0.25 moderate, ≥ 0.25 significant: drifted when ``score ≥ threshold``
    (default 0.25). Fixed PSI thresholds raise false alarms on small samples: keep ``min_samples``."""
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1], method="lower"))
    n_bins = edges.size + 1
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=n_bins) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=n_bins) / cur.size
    r, c = np.where(r == 0.0, PSI_EPSILON, r), np.where(c == 0.0, PSI_EPSILON, c)
    return float(np.sum((c - r) * np.log(c / r))), f"{n_bins} bins on reference deciles"


def _label_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    labels, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    inverse = inverse.ravel()
    ref_counts = np.bincount(inverse[: ref.size], minlength=labels.size)
    cur_counts = np.bincount(inverse[ref.size :], minlength=labels.size)
    return ref_counts, cur_counts, int(labels.size)


def _jensen_shannon(ref: np.ndarray, cur: np.ndarray) -> tuple[float, str]:
    """Jensen–Shannon distance in bits: ``sqrt(½ KL(P‖M) + ½ KL(Q‖M))``, ``M = (P + Q)/2``, P and Q the label
    shares over the union of labels seen (``scipy.spatial.distance.jensenshannon``, base 2); ∈ [0, 1]:
    0 identical, 1 disjoint. Drifted when ``score > threshold`` (default 0.1). Sampling noise alone gives
    about ``sqrt((k − 1)(1/n_ref + 1/n_cur) / (8 ln 2))`` for k labels (second-order expansion of the JS
    divergence; reported in ``detail``): with many classes and small windows prefer ``chi2``."""
    ref_counts, cur_counts, k = _label_counts(ref, cur)
    score = float(distance.jensenshannon(ref_counts / ref.size, cur_counts / cur.size, base=2.0))
    noise = math.sqrt((k - 1) * (1 / ref.size + 1 / cur.size) / (8 * math.log(2)))
    return min(max(score, 0.0), 1.0), f"{k} labels, ≈{noise:.3f} expected from sampling alone"


def _chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, str]:
    """Chi-square test of homogeneity on the 2×k table of label counts (reference, current), k = labels seen:
    ``χ² = Σ (O − E)² / E`` with ``E_ij = row_i · col_j / N``, ``dof = k − 1``, no Yates correction;
    score = the p-value. A single label in both samples leaves nothing to test: p = 1.
    Drifted when ``p < threshold`` (default 0.05)."""
    ref_counts, cur_counts, k = _label_counts(ref, cur)
    if k < 2:
        return 1.0, "a single label in both samples"
    res = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
    return float(res.pvalue), f"chi2={float(res.statistic):.4g}, dof={k - 1}, p={float(res.pvalue):.3g}"


def _class_mix(ref: np.ndarray, cur: np.ndarray) -> tuple[float, str]:
    """Chi-square test of homogeneity on label counts pooled for the window's size
    (:func:`camwatch.monitoring.calibration.pooled_counts`: a label keeps its own cell when the window
    expects at least 5 of it from the reference shares, the rest share one "other" cell), ``dof = cells − 1``,
    no Yates correction; score = the p-value (1 with a single cell). Unlike ``jensen_shannon`` on all labels
    it does not drift by itself on small windows of many-class models. Drifted when ``p < threshold``
    (default 0.05)."""
    p, effect, cells = class_mix_test(ref, cur)
    return p, f"{cells} pooled cells, total variation {effect:.3f}, p={p:.3g}"


def _heatmap_correlation(ref: MeanHeatmap, cur: MeanHeatmap) -> tuple[float, str]:
    """Pearson r between the reference's and the current window's mean normalised heatmaps, on the reference
    grid (:func:`camwatch.monitoring.reference.heatmap_correlation`: two constant maps give 1.0, one constant map 0.0).
    Drifted when ``r < threshold`` (default 0.9, :data:`DEFAULT_HEATMAP_CORRELATION`)."""
    r = heatmap_correlation(ref.data, cur.data)
    if r is None:  # unreachable: mean maps always sum to 1
        raise ValueError("mean heatmaps without mass cannot be correlated")
    return r, f"grid {ref.data.shape[0]}x{ref.data.shape[1]}"


# ------------------------------------------------------------------------------------------ preparation


def _finite(values: Any) -> tuple[np.ndarray, int]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(arr)
    return arr[keep], int(arr.size - keep.sum())


def _is_missing(label: Any) -> bool:
    return label is None or (isinstance(label, float) and math.isnan(label))


def _labels(values: Any) -> tuple[np.ndarray, int]:
    arr = np.asarray(values).ravel()
    if arr.dtype.kind in "iub":
        return arr, 0
    if arr.dtype.kind == "f":
        keep = ~np.isnan(arr)
        return arr[keep], int(arr.size - keep.sum())
    kept = [v for v in arr.tolist() if not _is_missing(v)]
    return np.asarray(kept), int(arr.size - len(kept))


HeatmapInput = MeanHeatmap | np.ndarray | Sequence[np.ndarray | None]


def _mean_map(maps: HeatmapInput, grid: tuple[int, int] | None) -> tuple[MeanHeatmap | None, int]:
    """A precomputed mean, or the mean of a stack (n, rows, cols) / sequence of maps, on ``grid``."""
    if isinstance(maps, MeanHeatmap):
        return maps, 0
    entries = list(maps)
    mean = mean_normalised_heatmap(entries, grid)
    return mean, len(entries) - (0 if mean is None else mean.n)


def _prepare(kind: Kind, reference: Any, current: Any) -> tuple[Any, Any, int, int, int]:
    """(reference, current, n_reference, n_current, n_current_dropped) ready for the score function."""
    if kind == "heatmap":
        ref, _ = _mean_map(reference, None)
        grid = None if ref is None else (int(ref.data.shape[0]), int(ref.data.shape[1]))
        cur, cur_dropped = _mean_map(current, grid)
        if isinstance(current, MeanHeatmap) and ref is not None and current.data.shape != ref.data.shape:
            raise ValueError(
                f"current mean heatmap grid {current.data.shape} differs from the reference grid "
                f"{ref.data.shape}: build it with mean_normalised_heatmap(maps, grid)"
            )
        return (ref, cur, 0 if ref is None else ref.n, 0 if cur is None else cur.n, cur_dropped)
    clean = _finite if kind == "numeric" else _labels
    ref_arr, _ = clean(reference)
    cur_arr, cur_dropped = clean(current)
    return ref_arr, cur_arr, int(ref_arr.size), int(cur_arr.size), cur_dropped


# ------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class DriftTest:
    """A registered test: ``drifted = score <drift_if> threshold``; ``scale`` says how to draw its score
    so that up is worse (:meth:`strength`)."""

    key: str
    kind: Kind
    threshold: float
    drift_if: Direction
    score_fn: Callable[[Any, Any], tuple[float, str]]
    scale: Scale = "distance"

    def strength(self, score: float) -> float:
        """The score on an "up is worse" axis: ``-log10 p`` for p-values (floored at :data:`P_FLOOR`),
        ``1 - r`` for similarities, the distance itself otherwise. Applied to the threshold too, the
        drift decision becomes ``strength(score) > strength(threshold)`` (``>=`` for ``>=`` tests)."""
        if self.scale == "p_value":
            return -math.log10(max(float(score), P_FLOOR))
        if self.scale == "similarity":
            return 1.0 - float(score)
        return float(score)

    @property
    def strength_label(self) -> str:
        """Axis title of :meth:`strength`."""
        return {"p_value": "-log10 p", "similarity": "1 - r", "distance": "distance"}[self.scale]

    @property
    def formula(self) -> str:
        """The test's definition (its score function's docstring)."""
        return inspect.getdoc(self.score_fn) or ""

    def run(
        self,
        reference: Any,
        current: Any,
        threshold: float | None = None,
        *,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> DriftOutcome:
        """Run the test. Numeric/categorical inputs are arrays or sequences of values; heatmap inputs are a
        :class:`~camwatch.monitoring.reference.MeanHeatmap` or a stack/sequence of raw maps (current maps are resampled to
        the reference grid)."""
        thr = self.threshold if threshold is None else float(threshold)
        ref, cur, n_ref, n_cur, dropped = _prepare(self.kind, reference, current)
        dropped_note = f"; dropped {dropped} missing current values" if dropped else ""
        if n_cur < min_samples or n_ref < min_samples:
            return DriftOutcome(
                self.key,
                None,
                thr,
                False,
                n_ref,
                n_cur,
                f"not enough data (n={n_cur} current, n={n_ref} reference, "
                f"minimum {min_samples}){dropped_note}",
            )
        score, detail = self.score_fn(ref, cur)
        drifted = _COMPARE[self.drift_if](score, thr)
        p_value, effect = self._significance(ref, cur, score)
        return DriftOutcome(
            self.key,
            score,
            thr,
            drifted,
            n_ref,
            n_cur,
            f"{detail}; drifted if score {self.drift_if} {thr:g}{dropped_note}",
            p_value,
            effect,
        )

    def _significance(self, ref: Any, cur: Any, score: float) -> tuple[float | None, float]:
        """``(p_value, effect_size)`` by kind (module docstring), reusing the score where it is one."""
        if self.kind == "numeric":
            p = score if self.key == "ks" else float(stats.ks_2samp(ref, cur).pvalue)
            return p, normalised_wasserstein(ref, cur)[0]
        if self.kind == "categorical":
            p, effect, _ = class_mix_test(ref, cur)
            return p, effect
        return None, 1.0 - score


DRIFT_TESTS: dict[str, DriftTest] = {
    t.key: t
    for t in (
        DriftTest("ks", "numeric", 0.05, "<", _ks, "p_value"),
        DriftTest("wasserstein", "numeric", 0.1, ">", _wasserstein),
        DriftTest("psi", "numeric", 0.25, ">=", _psi),
        DriftTest("jensen_shannon", "categorical", 0.1, ">", _jensen_shannon),
        DriftTest("chi2", "categorical", 0.05, "<", _chi2, "p_value"),
        DriftTest("class_mix", "categorical", 0.05, "<", _class_mix, "p_value"),
        DriftTest("heatmap_correlation", "heatmap", DEFAULT_HEATMAP_CORRELATION, "<", _heatmap_correlation,
                  "similarity"),
    )
}


def get_test(key: str) -> DriftTest:
    """The registered test for ``key``, with an error that lists the known keys."""
    try:
        return DRIFT_TESTS[key]
    except KeyError:
        raise ValueError(f"unknown drift test {key!r}; registered: {', '.join(DRIFT_TESTS)}") from None


def default_test_for(kind: Kind, n_reference: int) -> str:
    """Evidently's defaults: numeric → ``ks`` up to 1000 reference values, else ``wasserstein``;
    categorical → ``class_mix`` (not Evidently's Jensen–Shannon: biased on small windows); heatmap → ``heatmap_correlation``."""
    if kind == "numeric":
        return "ks" if n_reference <= KS_MAX_REFERENCE else "wasserstein"
    if kind == "categorical":
        return "class_mix"
    if kind == "heatmap":
        return "heatmap_correlation"
    raise ValueError(f"unknown drift kind {kind!r}; expected 'numeric', 'categorical' or 'heatmap'")


def dataset_drift(outcomes: Iterable[_HasDrift], share: float = 0.5) -> bool:
    """Evidently's dataset drift: at least ``share`` of the *tested* outcomes drifted. Outcomes that were
    not run (``score is None``) do not count; with none tested there is no drift."""
    tested = [o for o in outcomes if o.score is not None]
    if not tested:
        return False
    return sum(o.drifted for o in tested) / len(tested) >= share
