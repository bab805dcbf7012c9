"""The Slices page's bias view: every statistic and accuracy per tag value (or tag value × predicted class),
each against all the other images, with confidence intervals, effect sizes and a multiple-testing control,
sorted by how much the slice differs.

Definitions (also in ``docs/metrics.md``):

* a **group** is the images of one tag value (or one tag value and predicted class) in the hash sample; the
  **rest** is every other image of the sample with that tag;
* per statistic: the group's mean with its 95 % t-interval, **Cohen's d** against the rest,
  ``(mean_group − mean_rest) / s_pooled`` with ``s_pooled² = ((n₁−1)s₁² + (n₂−1)s₂²) / (n₁+n₂−2)`` (±∞ when
  both are constant and differ), and the p-value of Welch's t-test (unequal variances; 0 for two different
  constants);
* accuracy: the share of correct predictions among labelled images (reviewed labels override stored ones)
  with its 95 % Wilson interval, the difference to the rest, and Fisher's exact test on the 2×2 table;
* multiple testing: the Benjamini–Hochberg procedure at ``q = 0.05`` over every test of the view (groups ×
  statistics, and accuracy) -- a difference is *significant* when its adjusted p-value is at most ``q``;
* **disparity** of a group: the largest ``|d|`` among its significant differences of attention statistics
  (0 when none); groups are sorted by it, then by their largest ``|d|`` overall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import Engine

from camwatch.monitoring.calibration import benjamini_hochberg
from camwatch.monitoring.review import wilson_interval
from camwatch.statistics.registry import STATISTICS
from db.queries import ImageFilter, sample_rate
from db.queries_qa import bias_sample

Q = 0.05
MIN_GROUP = 10  # images a group needs in the sample to be tested


@dataclass(frozen=True)
class BiasView:
    """``table``: one row per group (``group`` label, ``value``, ``class_index``, ``n``; per statistic
    ``s``: ``s:mean``, ``s:low``, ``s:high``, ``s:d``, ``s:p``, ``s:p_adj``, ``s:significant``; accuracy
    columns ``labelled``, ``accuracy``, ``acc_low``, ``acc_high``, ``acc_diff``, ``acc_p_adj``,
    ``acc_significant``; ``disparity``, ``top_statistic``), sorted by disparity; ``tests``: the family
    size of the Benjamini–Hochberg control."""

    table: pd.DataFrame
    statistics: list[str]
    tests: int


def cohens_d(group: np.ndarray, rest: np.ndarray) -> float:
    """Cohen's d with the pooled standard deviation (NaN when undefined)."""
    n1, n2 = group.size, rest.size
    if n1 < 2 or n2 < 2:
        return math.nan
    pooled = math.sqrt(((n1 - 1) * group.var(ddof=1) + (n2 - 1) * rest.var(ddof=1)) / (n1 + n2 - 2))
    difference = float(group.mean() - rest.mean())
    if pooled == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return difference / pooled


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95 % t-interval of the mean (NaN for fewer than 2 values)."""
    if values.size < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.975, values.size - 1)) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return float(values.mean()) - half, float(values.mean()) + half


def _welch_p(group: np.ndarray, rest: np.ndarray) -> float:
    """Welch's t-test p-value; two constant samples (e.g. every image of a camera 800 px wide) differ with
    certainty when their values differ (p = 0) and are no test when equal (NaN)."""
    if group.size < 2 or rest.size < 2:
        return math.nan
    if np.ptp(group) == 0 and np.ptp(rest) == 0:
        return 0.0 if group[0] != rest[0] else math.nan
    # written out rather than scipy.stats.ttest_ind, which warns about "catastrophic cancellation" when one
    # sample is constant (one camera's width) although the test is well defined then
    a, b = group.var(ddof=1) / group.size, rest.var(ddof=1) / rest.size
    t = (group.mean() - rest.mean()) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (group.size - 1) + b**2 / (rest.size - 1))
    return float(2 * stats.t.sf(abs(t), df))


def _group_labels(sample: pd.DataFrame, by_class: bool, class_names: Sequence[str]) -> pd.Series:
    if not by_class:
        return sample["value"].astype(str)
    names = [class_names[c] if 0 <= c < len(class_names) else str(c) for c in sample["class_index"].astype(int)]
    return sample["value"].astype(str) + " × " + pd.Series(names, index=sample.index)


def bias_view(sample: pd.DataFrame, statistics: Sequence[str], *, by_class: bool = False,
              class_names: Sequence[str] = (), attention: Sequence[str] | None = None, q: float = Q,
              min_group: int = MIN_GROUP) -> BiasView:
    """The view over a :func:`db.queries_qa.bias_sample` frame (module docstring). ``attention`` names the
    statistics whose differences make up the disparity (default: those computed from the heatmap)."""
    attention = [s for s in statistics if s in STATISTICS and STATISTICS[s].source == "heatmap"] \
        if attention is None else list(attention)
    groups = _group_labels(sample, by_class, class_names) if len(sample) else pd.Series(dtype=object)
    records: list[dict[str, object]] = []
    p_values: list[float] = []
    slots: list[tuple[int, str]] = []  # (record, column prefix) of each p-value
    correct = sample["correct"] if "correct" in sample else pd.Series(dtype=object)
    for label in sorted(set(groups)):
        mine = (groups == label).to_numpy()
        if mine.sum() < min_group:
            continue
        first = sample[mine].iloc[0]
        record: dict[str, object] = {"group": label, "value": first["value"], "n": int(mine.sum()),
                                     "class_index": int(first["class_index"]) if by_class else None}
        for name in statistics:
            column = sample[name].to_numpy(dtype=np.float64)
            own, rest = column[mine], column[~mine]
            own, rest = own[np.isfinite(own)], rest[np.isfinite(rest)]
            low, high = mean_interval(own)
            p = _welch_p(own, rest)
            record.update({f"{name}:mean": float(own.mean()) if own.size else math.nan, f"{name}:low": low,
                           f"{name}:high": high, f"{name}:d": cohens_d(own, rest), f"{name}:p": p})
            slots.append((len(records), name))
            p_values.append(p)
        labelled = correct[mine].dropna().astype(bool)
        others = correct[~mine].dropna().astype(bool)
        interval = wilson_interval(int(labelled.sum()), int(labelled.size))
        record.update({"labelled": int(labelled.size),
                       "accuracy": float(labelled.mean()) if labelled.size else math.nan,
                       "acc_low": interval[0] if interval else math.nan,
                       "acc_high": interval[1] if interval else math.nan,
                       "acc_diff": float(labelled.mean() - others.mean()) if labelled.size and others.size
                       else math.nan})
        acc_p = math.nan
        if labelled.size and others.size:
            table = [[int(labelled.sum()), int((~labelled).sum())], [int(others.sum()), int((~others).sum())]]
            acc_p = float(stats.fisher_exact(table).pvalue)
        slots.append((len(records), "acc"))
        p_values.append(acc_p)
        records.append(record)
    rejected, adjusted = benjamini_hochberg(p_values, q)
    for (i, name), p_adj, significant in zip(slots, adjusted, rejected, strict=True):
        records[i][f"{name}:p_adj" if name != "acc" else "acc_p_adj"] = float(p_adj)
        records[i][f"{name}:significant" if name != "acc" else "acc_significant"] = bool(significant)
    for record in records:
        significant = [(abs(float(record[f"{s}:d"])), s) for s in attention  # type: ignore[arg-type]
                       if record.get(f"{s}:significant") and math.isfinite(float(record[f"{s}:d"]))]  # type: ignore[arg-type]
        overall = [(abs(float(record[f"{s}:d"])), s) for s in statistics  # type: ignore[arg-type]
                   if math.isfinite(float(record[f"{s}:d"]))]  # type: ignore[arg-type]
        record["disparity"] = max(significant)[0] if significant else 0.0
        record["top_statistic"] = max(significant)[1] if significant else (max(overall)[1] if overall else None)
        record["largest_d"] = max(overall)[0] if overall else 0.0
    table = pd.DataFrame(records)
    if len(table):
        table = table.sort_values(["disparity", "largest_d"], ascending=False, kind="stable").reset_index(drop=True)
    return BiasView(table=table, statistics=list(statistics), tests=int(np.isfinite(np.asarray(p_values)).sum()))


def slice_bias(engine: Engine, key: str, statistics: Sequence[str], f: ImageFilter, total: int, by_class: bool,
               class_names: Sequence[str], sample_rows: int = 20_000) -> tuple[BiasView, int]:
    """:func:`bias_view` over a hash sample of about ``sample_rows`` of the ``total`` images with tag ``key``
    matching ``f``; returns the view and the sample's per-mille rate."""
    per_mille = sample_rate(total, sample_rows)
    sample = bias_sample(engine, key, list(statistics), f, per_mille)
    return bias_view(sample, statistics, by_class=by_class, class_names=class_names), per_mille
