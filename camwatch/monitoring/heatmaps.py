"""Heatmaps as distributions: normalisation, resampling, means and correlation — defined once here and
used by the reference, the drift tests, the flag rules, the dashboard and the synthetic data.

Conventions
-----------
* A map ``h`` (non-negative, after ReLU) becomes the distribution ``p = h / Σh``. All-zero and non-finite
  maps have no distribution: they are skipped and counted, never averaged as zeros.
* Maps on another grid are resampled with bilinear interpolation over pixel areas
  (``scipy.ndimage.zoom(order=1, grid_mode=True)``), clipped at 0 and renormalised to sum 1. Averaging
  maps on different grids without resampling is meaningless, so every mean has one grid.
* Means weigh every image equally (the mean of the ``p``), whatever its raw magnitude.
* Correlation is Pearson's r of two maps on one grid, flattened (scale-free, so ``h`` or ``p``):
  ``r = Σ(a−ā)(b−b̄) / sqrt(Σ(a−ā)² Σ(b−b̄)²)``. Constant maps have no variance, so Pearson is undefined;
  camwatch's convention: two constant maps are the same (uniform) distribution → ``1.0``; one constant map
  against a structured one shares no spatial pattern → ``0.0``; a map that is all zero or not finite has
  no distribution → undefined (``None`` / NaN).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

_CONSTANT = 1e-24  # relative variance under which a map counts as constant (rounding noise of a uniform map)


@dataclass(frozen=True)
class MeanHeatmap:
    """Mean of ``n`` normalised maps (``data`` sums to 1); ``n_zero`` maps without mass were skipped."""

    n: int
    n_zero: int
    data: np.ndarray = field(compare=False)


def _as_map(heatmap: np.ndarray) -> np.ndarray:
    arr = np.asarray(heatmap, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap must be 2-D (rows, cols), got shape {arr.shape}")
    return arr


def normalise_stack(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p, keep)`` for a stack ``(k, rows, cols)``: ``p = h / Σh`` (float64) of the maps with mass, and the
    boolean mask of those maps in the stack (all-zero and non-finite maps are dropped)."""
    stack = np.asarray(maps)
    if stack.ndim != 3:
        raise ValueError(f"a stack of heatmaps must be 3-D (k, rows, cols), got shape {stack.shape}")
    totals = stack.sum(axis=(1, 2), dtype=np.float64)
    keep = np.isfinite(totals) & (totals > 0.0)
    return stack[keep].astype(np.float64) / totals[keep, None, None], keep


def normalise_heatmap(heatmap: np.ndarray) -> np.ndarray | None:
    """``p = h / Σh`` as float64, or ``None`` when the map is all zero or not finite (no distribution).

    Raises ``ValueError`` for negative values: camwatch's maps are non-negative (after ReLU).
    """
    arr = _as_map(heatmap)
    if arr.min() < 0.0:
        raise ValueError(f"heatmap has negative values (min {arr.min():.4g}); expected a non-negative map")
    p, keep = normalise_stack(arr[None])
    return p[0] if keep[0] else None


def resample_heatmap(heatmap: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Bilinear resample of a normalised map to ``grid`` (rows, cols), clipped at 0, renormalised to sum 1."""
    arr = _as_map(heatmap)
    if arr.shape == grid:
        return arr
    zoomed = ndimage.zoom(
        arr, (grid[0] / arr.shape[0], grid[1] / arr.shape[1]), order=1, mode="nearest", grid_mode=True
    )
    zoomed = np.clip(zoomed, 0.0, None)
    total = float(zoomed.sum())
    if total <= 0.0:
        raise ValueError(f"resampling a map of shape {arr.shape} to {grid} left no mass")
    return zoomed / total


def _to_grid(p: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A stack of normalised maps on ``grid``."""
    if p.shape[1:] == grid:
        return p
    return np.stack([resample_heatmap(m, grid) for m in p]) if p.shape[0] else np.empty((0, *grid))


def normalised_stack(
    maps: Sequence[np.ndarray | None], grid: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The maps with mass, normalised and resampled to ``grid`` (default: their most common grid, ties to
    the grid seen first).

    Returns ``(stack, kept, n_zero)``: ``stack`` has shape ``(k, rows, cols)``, ``kept[i]`` is the index in
    ``maps`` of ``stack[i]``, ``n_zero`` counts the maps without mass left out. ``None`` entries (no map) are
    ignored. Meant for native (low-resolution) maps: the stack is held in memory.
    """
    present = [(i, _as_map(m)) for i, m in enumerate(maps) if m is not None]
    shapes = Counter(m.shape for _, m in present)
    if grid is None:
        grid = shapes.most_common(1)[0][0] if present else (0, 0)
    if len(shapes) > 1:
        logger.debug("heatmaps on %d grids %s: resampling to %s", len(shapes), dict(shapes), grid)
    for _, m in present:
        if m.size and m.min() < 0.0:
            raise ValueError(f"heatmap has negative values (min {m.min():.4g}); expected a non-negative map")
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (indices, normalised maps on grid), one per shape
    for shape in shapes:
        idx = np.asarray([i for i, m in present if m.shape == shape], dtype=np.int64)
        p, keep = normalise_stack(np.stack([m for _, m in present if m.shape == shape]))
        parts.append((idx[keep], _to_grid(p, grid)))
    if not parts:
        return np.empty((0, *grid)), np.empty(0, dtype=np.int64), 0
    indices = np.concatenate([i for i, _ in parts])
    order = np.argsort(indices, kind="stable")
    stack = np.concatenate([p for _, p in parts])[order]
    return stack, indices[order], len(present) - int(indices.size)


def mean_normalised_heatmap(
    maps: Sequence[np.ndarray | None], grid: tuple[int, int] | None = None
) -> MeanHeatmap | None:
    """Mean of the normalised maps on ``grid`` (default: the most common grid among them).

    ``None`` entries are ignored (no map stored); maps without mass are counted in ``n_zero``. Returns
    ``None`` when no map has any mass.
    """
    stack, kept, n_zero = normalised_stack(maps, grid)
    if kept.size == 0:
        return None
    return MeanHeatmap(n=int(kept.size), n_zero=n_zero, data=stack.mean(axis=0))


class MapSums:
    """Running sums of normalised maps per group on one grid (``grid``, else the first grid seen): the mean
    of any union of groups over any number of chunks, in bounded memory."""

    def __init__(self, grid: tuple[int, int] | None = None) -> None:
        self.grid = grid
        self.sums: dict[Hashable, np.ndarray] = {}
        self.counts: dict[Hashable, int] = {}
        self.zero: dict[Hashable, int] = {}

    def add(self, groups: np.ndarray, maps: np.ndarray) -> None:
        """Add maps ``(k, rows, cols)`` belonging to ``groups`` ``(k,)``."""
        p, keep = normalise_stack(maps)
        groups = np.asarray(groups)
        for group in np.unique(groups[~keep]).tolist():
            self.zero[group] = self.zero.get(group, 0) + int((groups[~keep] == group).sum())
        groups = groups[keep]
        if self.grid is None and p.shape[0]:
            self.grid = (int(p.shape[1]), int(p.shape[2]))
        if self.grid is not None:
            p = _to_grid(p, self.grid)
        for group in np.unique(groups).tolist():
            rows = p[groups == group]
            self.sums[group] = self.sums.get(group, 0.0) + rows.sum(axis=0)
            self.counts[group] = self.counts.get(group, 0) + int(rows.shape[0])

    def mean(self, groups: Iterable[Hashable]) -> MeanHeatmap | None:
        """Mean over the union of ``groups`` (None when none of them has a map with mass)."""
        chosen = list(dict.fromkeys(groups))
        n = sum(self.counts.get(g, 0) for g in chosen)
        if n == 0 or self.grid is None:
            return None
        total = sum((self.sums[g] for g in chosen if self.counts.get(g)), np.zeros(self.grid))
        return MeanHeatmap(n=n, n_zero=sum(self.zero.get(g, 0) for g in chosen), data=total / n)


def row_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each map of ``a`` ``(k, rows, cols)`` with the matching map of ``b`` (same shape, or one
    map broadcast to all), with the module's conventions; NaN where undefined (no mass, not finite)."""
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected a stack of maps (k, rows, cols), got shape {x.shape}")
    y = np.asarray(b, dtype=np.float64)
    if y.shape[-2:] != x.shape[1:]:
        raise ValueError(f"heatmaps on different grids {x.shape[1:]} and {y.shape[-2:]}: resample one first")
    k = x.shape[0]
    x = x.reshape(k, -1)
    y = np.broadcast_to(y.reshape(-1, x.shape[1]) if y.ndim == 3 else y.reshape(1, -1), x.shape)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        xx, yy = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
        sx, sy = np.einsum("ij,ij->i", xc, xc), np.einsum("ij,ij->i", yc, yc)
        r = np.einsum("ij,ij->i", xc, yc) / np.sqrt(sx * sy)
    x_const, y_const = sx <= _CONSTANT * xx, sy <= _CONSTANT * yy
    r = np.where(x_const | y_const, np.where(x_const & y_const, 1.0, 0.0), np.clip(r, -1.0, 1.0))
    defined = np.isfinite(xx) & np.isfinite(yy) & (xx > 0.0) & (yy > 0.0)
    return np.where(defined, r, np.nan)


def heatmap_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r of two maps on the same grid (:func:`row_correlations` for one pair); ``None`` when
    either map has no distribution. Different grids are an error: resample first."""
    x, y = _as_map(a), _as_map(b)
    if x.shape != y.shape:
        raise ValueError(f"heatmaps on different grids {x.shape} and {y.shape}: resample one first")
    r = float(row_correlations(x[None], y)[0])
    return None if np.isnan(r) else r


def correlation_on_grid(a: np.ndarray, b: np.ndarray) -> float | None:
    """:func:`heatmap_correlation` of ``a`` with ``b`` resampled (as a distribution) to ``a``'s grid."""
    if b.shape != a.shape:
        p = normalise_heatmap(b)
        if p is None:
            return None
        b = resample_heatmap(p, (int(a.shape[0]), int(a.shape[1])))
    return heatmap_correlation(a, b)


def loo_correlations(stack: np.ndarray) -> np.ndarray:
    """Correlation of each normalised map ``p_i`` of ``stack`` with the mean of the *other* maps,
    ``(Σ_j p_j − p_i) / (n − 1)`` (leave-one-out), so a reference's values are not inflated by the map
    itself (a new image is never part of the mean). NaN for all when n < 2."""
    n = stack.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    return row_correlations(stack, (stack.sum(axis=0)[None] - stack) / (n - 1))
