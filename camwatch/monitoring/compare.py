"""Comparing two model versions on the images both processed (the Compare page; definitions in
docs/metrics.md, "Model versions compared").

- **agreement**: the share of images whose predicted class (top-1) is the same under both versions;
- **paired difference** of a statistic: ``d_i = x_i(B) - x_i(A)`` over the images where both values are
  finite; its mean with a two-sided 95 % Student t-interval ``mean ± t(0.975, n-1) · sd / sqrt(n)``
  (``sd`` with ``ddof = 1``); undefined below 2 pairs. The interval excluding 0 means the versions differ on
  that statistic beyond the image-to-image noise (one test per statistic: no multiple-testing correction);
- **attention shift** of an image: ``1 - r`` with ``r`` the Pearson correlation of the two versions' primary
  heatmaps (B's map resampled as a distribution to A's grid when the grids differ): 0 when the maps agree
  up to scale, 1 when unrelated, up to 2 when opposite; undefined (NaN) when either map has no mass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from camwatch.monitoring.heatmaps import correlation_on_grid

CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """The paired difference B − A of one statistic: ``n`` pairs, the means, the mean difference and its CI."""

    statistic: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float

    @property
    def differs(self) -> bool:
        """Whether the interval excludes 0 (False when undefined)."""
        return bool(self.ci_low > 0.0 or self.ci_high < 0.0)


def paired_difference(statistic: str, a: Sequence[float | None], b: Sequence[float | None]) -> PairedDifference:
    """Mean of ``b - a`` over the pairs where both are finite, with its t-interval (NaN below 2 pairs)."""
    x = np.asarray([np.nan if v is None else v for v in a], dtype=float)
    y = np.asarray([np.nan if v is None else v for v in b], dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"{statistic}: {x.size} values of version A but {y.size} of version B")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n == 0:
        return PairedDifference(statistic, 0, math.nan, math.nan, math.nan, math.nan, math.nan)
    d = y - x
    mean = float(d.mean())
    if n < 2:
        return PairedDifference(statistic, n, float(x.mean()), float(y.mean()), mean, math.nan, math.nan)
    half = float(sps.t.ppf(0.5 + CONFIDENCE_LEVEL / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return PairedDifference(statistic, n, float(x.mean()), float(y.mean()), mean, mean - half, mean + half)


def agreement(classes_a: Sequence[int], classes_b: Sequence[int]) -> float:
    """The share of images with the same predicted class under both versions (NaN without images)."""
    a, b = np.asarray(classes_a), np.asarray(classes_b)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} predictions of version A but {b.size} of version B")
    return float(np.mean(a == b)) if a.size else math.nan


def attention_shift(map_a: np.ndarray | None, map_b: np.ndarray | None) -> float:
    """``1 - r`` of two heatmaps of one image (see the module docstring); NaN when undefined."""
    if map_a is None or map_b is None:
        return math.nan
    try:
        r = correlation_on_grid(np.asarray(map_a, dtype=float), np.asarray(map_b, dtype=float))
    except ValueError:  # a map with negative or no mass after resampling: no distribution to compare
        return math.nan
    return math.nan if r is None else 1.0 - r


def moved_first(image_ids: Sequence[int], shifts: Sequence[float]) -> list[int]:
    """Image ids by decreasing attention shift (ties: smaller id first; undefined shifts last)."""
    order = sorted(zip(image_ids, shifts, strict=True),
                   key=lambda p: (math.isnan(p[1]), -p[1] if not math.isnan(p[1]) else 0.0, p[0]))
    return [int(i) for i, _ in order]
