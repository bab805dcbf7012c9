"""The reference: what "normal" looks like, per predicted class and overall.

A reference is built once from a batch of known-good images (their :class:`StatRow`) and kept in the
database (tables ``reference_stats`` and ``reference_heatmaps``, see :meth:`ReferenceSummary.to_dict`).
Drift tests compare a window of production images against it; the ``atypical_attention`` flag compares a
single image against its predicted class.

Conventions
-----------
* ``class_index = -1`` (:data:`ALL_CLASSES`) is the overall reference, every other index a predicted class.
* Statistic values are the heatmap statistics of the row plus the engine values :data:`ENGINE_KEYS`, plus
  :data:`ATTENTION_CORRELATION` derived from the maps: the Pearson r of an image's normalised map with the
  mean map of its class (for ``-1``: with the overall mean map). For reference images it is taken against
  the mean of the *other* images (leave-one-out, :func:`loo_correlations`). It gives the typical r per class,
  which a fixed threshold cannot: on synthetic 7x7 maps (a blob jittered by 1 cell) the single-image r with
  the class mean had median 0.67 and 5th percentile 0.12, and a fixed r < 0.5 flagged 30% of 5000 normal
  images. ``None`` and non-finite values are missing: they are not counted in ``n`` and never sampled.
* ``mean`` and ``std`` are computed over *all* finite values; ``std`` is the population standard deviation
  (``ddof = 0``, as Evidently uses to normalise the Wasserstein distance). ``values`` is a uniform random
  subsample without replacement of at most ``max_values`` values, kept in row order; it is drawn from a
  generator seeded by ``(seed, crc32(statistic), class_index + 1)``, so it is deterministic and adding a
  statistic does not change the samples of the others.
* Heatmaps are averaged as distributions: each map ``h`` becomes ``p = h / Σh`` before averaging, so the mean
  map sums to 1 and every image weighs the same whatever its raw magnitude. All-zero maps (Grad-CAM can be
  ``ReLU`` of a negative sum) have no distribution: they are skipped and counted in ``n_zero``.
* Maps on different grids are resampled to the most common grid (ties: the grid seen first) with bilinear
  interpolation over pixel areas (``scipy.ndimage.zoom(order=1, grid_mode=True)``), clipped at 0 and
  renormalised. Averaging maps on different grids without resampling is meaningless, so there is one grid per
  reference, shared by every class.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

ALL_CLASSES = -1
ENGINE_KEYS: tuple[str, ...] = ("confidence", "raw_max", "raw_sum", "target_logit")
ATTENTION_CORRELATION = "attention_correlation"
_RESERVED = (*ENGINE_KEYS, ATTENTION_CORRELATION)
SERIAL_VERSION = 1


@dataclass(frozen=True)
class StatRow:
    """One image as the reference and the drift tests see it."""

    class_index: int
    stats: Mapping[str, float | None]
    confidence: float | None = None
    raw_max: float | None = None
    raw_sum: float | None = None
    target_logit: float | None = None
    heatmap: np.ndarray | None = field(default=None, compare=False)

    def values(self) -> dict[str, float | None]:
        """Heatmap statistics and engine values in one mapping (a clash of names is an error)."""
        clash = set(_RESERVED) & set(self.stats)
        if clash:
            raise ValueError(
                f"statistic names {sorted(clash)} clash with names camwatch reserves: {_RESERVED}"
            )
        out: dict[str, float | None] = dict(self.stats)
        out.update(
            confidence=self.confidence,
            raw_max=self.raw_max,
            raw_sum=self.raw_sum,
            target_logit=self.target_logit,
        )
        return out


@dataclass(frozen=True)
class StatSummary:
    """One statistic of one class: ``n`` finite values, their mean and std, and a capped sample."""

    statistic: str
    class_index: int
    n: int
    mean: float | None
    std: float | None
    values: np.ndarray = field(compare=False)


@dataclass(frozen=True)
class MeanHeatmap:
    """Mean of ``n`` normalised maps (``data`` sums to 1); ``n_zero`` all-zero maps were skipped."""

    n: int
    n_zero: int
    data: np.ndarray = field(compare=False)


# ----------------------------------------------------------------------------------------------- heatmaps


def _as_map(heatmap: np.ndarray) -> np.ndarray:
    arr = np.asarray(heatmap, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap must be 2-D (rows, cols), got shape {arr.shape}")
    return arr


def normalise_heatmap(heatmap: np.ndarray) -> np.ndarray | None:
    """``p = h / Σh`` as float64, or ``None`` when the map is all zero or not finite (no distribution).

    Raises ``ValueError`` for negative values: camwatch's maps are non-negative (after ReLU).
    """
    arr = _as_map(heatmap)
    if arr.min() < 0.0:
        raise ValueError(f"heatmap has negative values (min {arr.min():.4g}); expected a non-negative map")
    total = float(arr.sum())
    if not math.isfinite(total) or total <= 0.0:
        return None
    return arr / total


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


def normalised_stack(
    maps: Sequence[np.ndarray | None], grid: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The maps with mass, normalised and resampled to ``grid`` (default: their most common grid).

    Returns ``(stack, kept, n_zero)``: ``stack`` has shape ``(k, rows, cols)``, ``kept[i]`` is the index in
    ``maps`` of ``stack[i]``, ``n_zero`` counts the all-zero maps left out. ``None`` entries (no map) are
    ignored. Meant for native (low-resolution) maps: the stack is held in memory.
    """
    present = [(i, _as_map(m)) for i, m in enumerate(maps) if m is not None]
    shapes = Counter(m.shape for _, m in present)
    if grid is None:
        grid = shapes.most_common(1)[0][0] if present else (0, 0)
    if len(shapes) > 1:
        logger.debug("heatmaps on %d grids %s: resampling to %s", len(shapes), dict(shapes), grid)
    normalised = [(i, normalise_heatmap(m)) for i, m in present]
    kept = [(i, resample_heatmap(p, grid)) for i, p in normalised if p is not None]
    stack = np.stack([p for _, p in kept]) if kept else np.empty((0, *grid))
    return stack, np.asarray([i for i, _ in kept], dtype=np.int64), len(present) - len(kept)


def mean_normalised_heatmap(
    maps: Sequence[np.ndarray | None], grid: tuple[int, int] | None = None
) -> MeanHeatmap | None:
    """Mean of the normalised maps on ``grid`` (default: the most common grid among them).

    ``None`` entries are ignored (no map stored); all-zero maps are counted in ``n_zero``. Returns ``None``
    when no map has any mass.
    """
    stack, kept, n_zero = normalised_stack(maps, grid)
    if kept.size == 0:
        return None
    return MeanHeatmap(n=int(kept.size), n_zero=n_zero, data=stack.mean(axis=0))


def heatmap_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two maps on the same grid, flattened (scale-free, so ``h`` or ``h / Σh``).

    ``r = Σ(a−ā)(b−b̄) / sqrt(Σ(a−ā)² Σ(b−b̄)²)``. Constant maps have no variance, so Pearson is undefined;
    camwatch's convention: two constant maps are the same (uniform) distribution → ``1.0``; one constant map
    against a structured one shares no spatial pattern → ``0.0``. ``None`` when either map is all zero or not
    finite (no distribution to compare). Different grids are an error: resample first. About 20 µs for 7x7
    maps (the flag rules call it once per image).
    """
    x, y = _as_map(a), _as_map(b)
    if x.shape != y.shape:
        raise ValueError(f"heatmaps on different grids {x.shape} and {y.shape}: resample one first")
    x, y = x.ravel(), y.ravel()
    xx, yy = float(x @ x), float(y @ y)
    if not (math.isfinite(xx) and math.isfinite(yy)) or xx == 0.0 or yy == 0.0:
        return None
    xc, yc = x - float(x.sum()) / x.size, y - float(y.sum()) / y.size  # ndarray.mean is slower
    sx, sy = float(xc @ xc), float(yc @ yc)
    # Relative tolerance: a uniform map can carry rounding noise around its mean.
    x_const, y_const = sx <= 1e-24 * xx, sy <= 1e-24 * yy
    if x_const or y_const:
        return 1.0 if (x_const and y_const) else 0.0
    return max(-1.0, min(1.0, float(xc @ yc) / math.sqrt(sx * sy)))


def nan_for_none(values: Iterable[float | None], count: int) -> np.ndarray:
    """``count`` values as a float array, ``None`` → NaN."""
    return np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64, count=count)


def loo_correlations(stack: np.ndarray) -> np.ndarray:
    """:data:`ATTENTION_CORRELATION` of reference maps: r of each normalised map ``p_i`` with the mean of the
    *other* maps, ``(Σ_j p_j − p_i) / (n − 1)``, so the reference values are not inflated by the map itself
    (a new image is never part of the mean). NaN for all when n < 2."""
    n = stack.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    total = stack.sum(axis=0)
    return nan_for_none((heatmap_correlation(p, (total - p) / (n - 1)) for p in stack), n)


# ---------------------------------------------------------------------------------------------- reference


@dataclass
class ReferenceSummary:
    """Per class (and overall, ``-1``): statistic summaries, the mean normalised heatmap, the class mix."""

    class_counts: dict[int, int]
    stats: dict[tuple[str, int], StatSummary]
    heatmaps: dict[int, MeanHeatmap]
    max_values: int = 5000
    seed: int = 0

    @property
    def n(self) -> int:
        """Number of reference images."""
        return sum(self.class_counts.values())

    @property
    def statistics(self) -> list[str]:
        """Statistic names, sorted."""
        return sorted({key for key, _ in self.stats})

    def n_images(self, class_index: int) -> int:
        """Images predicted as ``class_index`` (``-1``: all images)."""
        return self.n if class_index == ALL_CLASSES else self.class_counts.get(class_index, 0)

    def stat(self, statistic: str, class_index: int = ALL_CLASSES) -> StatSummary | None:
        """The summary of ``statistic`` for ``class_index``, or ``None`` when the reference has none."""
        return self.stats.get((statistic, class_index))

    def class_labels(self) -> np.ndarray:
        """The class mix as a label array (``class_counts`` expanded), for categorical drift tests."""
        classes = sorted(self.class_counts)
        return np.repeat(np.asarray(classes, dtype=np.int64), [self.class_counts[c] for c in classes])

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe dict. ``stats`` rows match table ``reference_stats(statistic, class_index, n,
        mean, std, values)``; ``heatmaps`` rows match ``reference_heatmaps(class_index, n, grid_h, grid_w,
        data)`` (plus ``n_zero``), ``data`` row-major; ``class_counts`` is the class mix (images per
        predicted class, keys as strings for JSON)."""
        return {
            "version": SERIAL_VERSION,
            "max_values": self.max_values,
            "seed": self.seed,
            "class_counts": {str(c): n for c, n in sorted(self.class_counts.items())},
            "stats": [
                {
                    "statistic": s.statistic,
                    "class_index": s.class_index,
                    "n": s.n,
                    "mean": s.mean,
                    "std": s.std,
                    "values": s.values.astype(float).tolist(),
                }
                for _, s in sorted(self.stats.items())
            ],
            "heatmaps": [
                {
                    "class_index": c,
                    "n": hm.n,
                    "n_zero": hm.n_zero,
                    "grid_h": int(hm.data.shape[0]),
                    "grid_w": int(hm.data.shape[1]),
                    "data": hm.data.astype(float).ravel().tolist(),
                }
                for c, hm in sorted(self.heatmaps.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceSummary:
        """Inverse of :meth:`to_dict`; ``n_zero`` defaults to 0 when the store does not keep it."""
        version = data.get("version", SERIAL_VERSION)
        if version != SERIAL_VERSION:
            raise ValueError(
                f"reference summary version {version} is not supported (expected {SERIAL_VERSION})"
            )
        stats: dict[tuple[str, int], StatSummary] = {}
        for rec in data["stats"]:
            s = StatSummary(
                statistic=str(rec["statistic"]),
                class_index=int(rec["class_index"]),
                n=int(rec["n"]),
                mean=None if rec["mean"] is None else float(rec["mean"]),
                std=None if rec["std"] is None else float(rec["std"]),
                values=np.asarray(rec["values"], dtype=np.float64),
            )
            stats[(s.statistic, s.class_index)] = s
        heatmaps: dict[int, MeanHeatmap] = {}
        for rec in data["heatmaps"]:
            shape = (int(rec["grid_h"]), int(rec["grid_w"]))
            values = np.asarray(rec["data"], dtype=np.float64)
            if values.size != shape[0] * shape[1]:
                raise ValueError(
                    f"reference heatmap of class {rec['class_index']}: {values.size} values do not "
                    f"fill a {shape[0]}x{shape[1]} grid"
                )
            heatmaps[int(rec["class_index"])] = MeanHeatmap(
                n=int(rec["n"]), n_zero=int(rec.get("n_zero", 0)), data=values.reshape(shape)
            )
        return cls(
            class_counts={int(c): int(n) for c, n in data["class_counts"].items()},
            stats=stats,
            heatmaps=heatmaps,
            max_values=int(data.get("max_values", 5000)),
            seed=int(data.get("seed", 0)),
        )


def value_matrix(rows: Sequence[StatRow], names: Sequence[str]) -> np.ndarray:
    """Statistic values as a float array (rows, names); missing values (``None``, absent) are NaN."""
    cells = [
        [np.nan if (v := values.get(k)) is None else v for k in names] for values in map(StatRow.values, rows)
    ]
    return np.array(cells, dtype=np.float64).reshape(len(rows), len(names))


def _sample(values: np.ndarray, max_values: int, seed: int, statistic: str, class_index: int) -> np.ndarray:
    if values.size <= max_values:
        return values.copy()
    rng = np.random.default_rng([seed, zlib.crc32(statistic.encode("utf-8")), class_index + 1])
    keep = np.sort(rng.choice(values.size, size=max_values, replace=False))
    return values[keep]


def _summarise(
    statistic: str, class_index: int, column: np.ndarray, max_values: int, seed: int
) -> StatSummary:
    finite = column[np.isfinite(column)]
    if finite.size == 0:
        return StatSummary(statistic, class_index, 0, None, None, np.empty(0))
    return StatSummary(
        statistic,
        class_index,
        int(finite.size),
        float(finite.mean()),
        float(finite.std()),
        _sample(finite, max_values, seed, statistic, class_index),
    )


def build_reference(rows: Sequence[StatRow], *, max_values: int = 5000, seed: int = 0) -> ReferenceSummary:
    """Summarise reference rows per predicted class and overall (see the module docstring for conventions)."""
    if not rows:
        raise ValueError("cannot build a reference from zero rows")
    if max_values < 1:
        raise ValueError(f"max_values must be >= 1, got {max_values}")
    names = sorted({k for row in rows for k in row.values()})
    matrix = value_matrix(rows, names)
    classes = np.fromiter((row.class_index for row in rows), dtype=np.int64, count=len(rows))
    if (classes < 0).any():
        raise ValueError(
            f"negative class index in the reference rows (-1 is reserved for 'all classes'): "
            f"{sorted(set(classes[classes < 0].tolist()))}"
        )
    groups: dict[int, np.ndarray] = {ALL_CLASSES: np.arange(len(rows))}
    for c in np.unique(classes):
        groups[int(c)] = np.flatnonzero(classes == c)

    stats = {
        (name, c): _summarise(name, c, matrix[idx, j], max_values, seed)
        for c, idx in groups.items()
        for j, name in enumerate(names)
    }

    stack, kept, _ = normalised_stack([row.heatmap for row in rows])
    heatmaps: dict[int, MeanHeatmap] = {}
    if stack.shape[1:] != (0, 0):
        position = np.full(len(rows), -1, dtype=np.int64)
        position[kept] = np.arange(kept.size)
        has_map = np.fromiter((row.heatmap is not None for row in rows), dtype=bool, count=len(rows))
        for c, idx in groups.items():
            sub = stack[position[idx][position[idx] >= 0]]
            n_zero = int(has_map[idx].sum()) - sub.shape[0]
            stats[(ATTENTION_CORRELATION, c)] = _summarise(
                ATTENTION_CORRELATION, c, loo_correlations(sub), max_values, seed
            )
            if sub.shape[0] == 0:
                logger.warning("class %d: no reference heatmap with any mass (all missing or all zero)", c)
                continue
            if n_zero:
                logger.info("class %d: skipped %d all-zero heatmaps of %d", c, n_zero, sub.shape[0] + n_zero)
            heatmaps[c] = MeanHeatmap(n=sub.shape[0], n_zero=n_zero, data=sub.mean(axis=0))
    counts = {int(c): int(idx.size) for c, idx in groups.items() if c != ALL_CLASSES}
    return ReferenceSummary(
        class_counts=counts, stats=stats, heatmaps=heatmaps, max_values=max_values, seed=seed
    )
