"""Calibrated drift decisions: error control across a window's tests, effect sizes, an unbiased class-mix
test for small windows and thresholds learned from the reference.

A registered test (:mod:`camwatch.monitoring.drift`) gives a score and its own threshold. That alone makes
a noisy alarm: a window runs dozens of tests (statistics x classes x slices), and at ``p < 0.05`` each
fires in 5 % of windows with nothing wrong; a large window's tiny shift is significant without mattering.
The stored decision (:func:`calibrate_window`) is therefore:

* ``fdr_effect`` (default): **significant** after Benjamini-Hochberg over every test of the window that has
  a p-value (``q <= fdr``, default :data:`DEFAULT_FDR` = 0.01), run hierarchically over the window's slices
  (:func:`hierarchical_q`: BH over slices, then BH within the selected ones), **and large**:
  ``effect >= effect threshold``.
  Effect sizes: numeric statistics the Wasserstein-1 distance in reference standard deviations
  (:func:`normalised_wasserstein`; a pure mean shift of ``d`` reference SDs gives ``d``), default threshold
  :data:`DEFAULT_MIN_EFFECT` = 0.2 (Cohen's "small" effect); label mixes the total variation distance of
  the pooled shares (:func:`pooled_counts`), default :data:`DEFAULT_MIN_MIX_EFFECT` = 0.1 (a tenth of the
  images changed class); heatmaps ``1 - r``.
* ``reference_chunks`` (NannyML's way, per statistic in ``drift.chunk_statistics``): the reference is cut
  into consecutive chunks of the window's size, each chunk's effect against the rest of the reference is
  computed, and the window drifts when its effect exceeds ``mean + 3 sd`` of those chunk values
  (:func:`chunk_threshold`). Not part of the BH family.
* ``threshold``: tests without a p-value (``heatmap_correlation``) decide on their own threshold.
* A test that was not run (too few images) is ``not_enough_data``: never drifted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal, Protocol, TypeVar

import numpy as np
from scipy import stats

DEFAULT_FDR = 0.01
DEFAULT_MIN_EFFECT = 0.2
DEFAULT_MIN_MIX_EFFECT = 0.1
#: smallest expected count of a class in the window for it to keep its own cell (Cochran's rule)
MIN_EXPECTED = 5.0
CHUNK_SIGMAS = 3.0
MIN_CHUNKS = 5

Decision = Literal["drifted", "no_drift", "not_enough_data"]
Rule = Literal["fdr_effect", "reference_chunks", "threshold"]
DECISIONS: tuple[str, ...] = ("drifted", "no_drift", "not_enough_data")
#: The decision of a window (or slice) with too few images: never drifted, and it says nothing to alerts.
NOT_ENOUGH_DATA: Decision = "not_enough_data"
RULES: tuple[str, ...] = ("fdr_effect", "reference_chunks", "threshold")


def benjamini_hochberg(p_values: Sequence[float | None], q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg control of the false discovery rate at ``q`` over one family of tests.

    Returns ``(rejected, adjusted)``: whether each hypothesis is rejected, and its adjusted p-value
    ``min_{j >= i} (m / j) p_(j)`` (capped at 1). Missing or non-finite p-values are not tests: never
    rejected, adjusted NaN, and not counted in ``m``."""
    p = np.asarray([np.nan if v is None else v for v in p_values], dtype=np.float64)
    valid = np.isfinite(p)
    adjusted = np.full(p.shape, np.nan)
    m = int(valid.sum())
    if m:
        order = np.argsort(p[valid])
        ranked = p[valid][order] * m / np.arange(1, m + 1)
        monotone = np.minimum.accumulate(ranked[::-1])[::-1]
        values = np.empty(m)
        values[order] = np.minimum(monotone, 1.0)
        adjusted[valid] = values
    return np.where(valid, adjusted <= q, False), adjusted


# ------------------------------------------------------------------------------------------ effect sizes


def normalised_wasserstein(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, bool]:
    """``(W1 / sd, sd, pooled)``: the Wasserstein-1 distance over the reference's population SD (ddof 0);
    a constant reference is divided by the SD of reference ∪ current instead (``pooled`` True; 0 when both
    are constant and equal)."""
    w1 = float(stats.wasserstein_distance(ref, cur))
    sigma = float(np.std(ref))
    if sigma > 0.0:
        return w1 / sigma, sigma, False
    pooled = float(np.std(np.concatenate([ref, cur])))
    return (0.0 if pooled == 0.0 else w1 / pooled), pooled, True


def pooled_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts over label cells fit for a chi-square test on the window's size.

    A label keeps its own cell when its expected count in the window, ``n_cur * n_ref(label) / n_ref``, is
    at least :data:`MIN_EXPECTED`; every other label (rare ones, and labels the reference never saw) goes
    to one "other" cell, which joins the smallest kept cell when its own expectation is under the minimum
    too. Sorted by reference count (largest first), "other" last when it stands alone."""
    labels, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    inverse = inverse.ravel()
    r = np.bincount(inverse[: ref.size], minlength=labels.size).astype(np.float64)
    c = np.bincount(inverse[ref.size:], minlength=labels.size).astype(np.float64)
    keep = cur.size * r / max(ref.size, 1) >= MIN_EXPECTED
    order = np.argsort(-r[keep], kind="stable")
    r_kept, c_kept = r[keep][order], c[keep][order]
    r_other, c_other = float(r[~keep].sum()), float(c[~keep].sum())
    if r_other + c_other == 0:
        return r_kept, c_kept
    if cur.size * r_other / max(ref.size, 1) >= MIN_EXPECTED or r_kept.size == 0:
        return np.append(r_kept, r_other), np.append(c_kept, c_other)
    r_kept[-1] += r_other
    c_kept[-1] += c_other
    return r_kept, c_kept


def total_variation(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """``½ Σ |r_j − c_j|`` of the two count vectors' shares, in [0, 1]."""
    return 0.5 * float(np.abs(ref_counts / ref_counts.sum() - cur_counts / cur_counts.sum()).sum())


def class_mix_test(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, int]:
    """``(p, effect, cells)``: chi-square test of homogeneity (no Yates correction) on the 2 x k table of
    :func:`pooled_counts`, and the total variation distance of those cells' shares. One cell: p = 1."""
    r, c = pooled_counts(ref, cur)
    if r.size < 2:
        return 1.0, 0.0, int(r.size)
    res = stats.chi2_contingency(np.vstack([r, c]), correction=False)
    return float(res.pvalue), total_variation(r, c), int(r.size)


def chunk_threshold(reference: np.ndarray, chunk_size: int,
                    effect: Callable[[np.ndarray, np.ndarray], float],
                    sigmas: float = CHUNK_SIGMAS) -> tuple[float, int] | None:
    """NannyML-style threshold: ``mean + sigmas * sd`` (ddof 1) of ``effect(rest, chunk)`` over the
    consecutive chunks of ``chunk_size`` reference values (each against the reference without it);
    ``(threshold, n_chunks)``, or None with fewer than :data:`MIN_CHUNKS` chunks. The window's size is the
    right chunk size (the effect's sampling noise depends on it): callers pass ``min(n_window,
    n_reference // MIN_CHUNKS)``, which errs on the quiet side when the reference is short."""
    n_chunks = reference.size // max(chunk_size, 1)
    if chunk_size < 1 or n_chunks < MIN_CHUNKS:
        return None
    values = []
    for k in range(n_chunks):
        inside = np.zeros(reference.size, dtype=bool)
        inside[k * chunk_size:(k + 1) * chunk_size] = True
        values.append(effect(reference[~inside], reference[inside]))
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean() + sigmas * arr.std(ddof=1)), n_chunks


# ------------------------------------------------------------------------------------------- the decision


class Calibratable(Protocol):
    """What :func:`calibrate_window` reads of a drift record (a frozen dataclass)."""

    @property
    def score(self) -> float | None: ...

    @property
    def p_value(self) -> float | None: ...

    @property
    def effect_size(self) -> float | None: ...

    @property
    def effect_threshold(self) -> float | None: ...

    @property
    def rule(self) -> str: ...

    @property
    def raw_drifted(self) -> bool: ...


R = TypeVar("R", bound=Calibratable)


def decide(record: Calibratable, q_value: float | None, fdr: float) -> Decision:
    """The decision of one record (module docstring) given its BH-adjusted p-value."""
    if record.score is None:
        return "not_enough_data"
    if record.rule == "threshold":
        return "drifted" if record.raw_drifted else "no_drift"
    large = (record.effect_size is not None and record.effect_threshold is not None
             and math.isfinite(record.effect_size) and record.effect_size >= record.effect_threshold)
    if record.rule == "reference_chunks":
        above = large and record.effect_size != record.effect_threshold
        return "drifted" if above else "no_drift"
    significant = q_value is not None and math.isfinite(q_value) and q_value <= fdr
    return "drifted" if significant and large else "no_drift"


def hierarchical_q(p_values: Sequence[float | None], groups: Sequence[str], fdr: float) -> np.ndarray:
    """q-values of a window's tests grouped by slice (Benjamini & Bogomolov 2014): Benjamini-Hochberg over
    the slices, each represented by its Simes p-value (the smallest BH-adjusted p within it), selects ``R``
    of the ``S`` slices at ``fdr``; within a selected slice, BH runs at ``fdr * R / S``. Returned as one
    number per test, ``max(q_slice, q_within * S / max(R, 1))``, so that "``q <= fdr``" is that decision.
    Unlike one flat BH over the window, a slice with many true discoveries (the camera that changed) does
    not loosen the bar for the others. Missing p-values: NaN."""
    p = np.asarray([np.nan if v is None else v for v in p_values], dtype=np.float64)
    out = np.full(p.shape, np.nan)
    names = sorted({g for g, v in zip(groups, p, strict=True) if np.isfinite(v)})
    if not names:
        return out
    members = {g: np.flatnonzero((np.asarray(groups, dtype=object) == g) & np.isfinite(p)) for g in names}
    within = {g: benjamini_hochberg(p[idx].tolist(), fdr)[1] for g, idx in members.items()}
    selected, q_slice = benjamini_hochberg([float(within[g].min()) for g in names], fdr)
    scale = len(names) / max(int(selected.sum()), 1)
    for k, g in enumerate(names):
        out[members[g]] = np.maximum(q_slice[k], np.minimum(within[g] * scale, 1.0))
    return out


def calibrate_window(records: Sequence[R], fdr: float = DEFAULT_FDR, groups: Sequence[str] | None = None) -> list[R]:
    """The records of one window (all its statistics, classes and slices: one family) with ``q_value``,
    ``fdr``, ``decision`` and ``drifted`` set. Only tested ``fdr_effect`` records with a p-value are in
    the family; ``groups`` (the slice of each record) makes the error control hierarchical
    (:func:`hierarchical_q`), without it one Benjamini-Hochberg runs over the family."""
    family = [i for i, r in enumerate(records)
              if r.rule == "fdr_effect" and r.score is not None and r.p_value is not None]
    p_values = [records[i].p_value for i in family]
    if groups is None:
        adjusted = benjamini_hochberg(p_values, fdr)[1]
    else:
        adjusted = hierarchical_q(p_values, [groups[i] for i in family], fdr)
    q_of = {i: float(adjusted[k]) for k, i in enumerate(family)}
    out = []
    for i, r in enumerate(records):
        q = q_of.get(i)
        decision = decide(r, q, fdr)
        out.append(replace(r, q_value=q, fdr=fdr if i in q_of else None,  # type: ignore[type-var]
                           decision=decision, drifted=decision == "drifted"))
    return out


def explain(decision: str, rule: str, *, q_value: float | None, fdr: float | None, effect_size: float | None,
            effect_threshold: float | None, score: float | None, threshold: float | None) -> str:
    """One line saying why a stored result decided what it did (dashboard, alert summaries)."""
    if decision == "not_enough_data":
        return "not enough data: too few images in this window (never drifted)"

    def num(v: float | None) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{v:.3g}"

    if rule == "threshold":
        return f"score {num(score)} against threshold {num(threshold)}"
    effect = f"effect {num(effect_size)} (threshold {num(effect_threshold)})"
    if rule == "reference_chunks":
        return f"{effect}; threshold = mean + 3 sd of reference chunks"
    return f"q {num(q_value)} (FDR {num(fdr)}); {effect}"
