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
* Categorical image properties (:data:`~camwatch.statistics.registry.CATEGORIES`, the camera model) are
  kept as the count of each value over all reference images (``categories``), a missing value counted as
  :data:`~camwatch.statistics.registry.UNKNOWN_CATEGORY`; drift tests compare the window's mix with it,
  like the predicted-class mix.
* Heatmaps are averaged as distributions: each map ``h`` becomes ``p = h / Σh`` before averaging, so the mean
  map sums to 1 and every image weighs the same whatever its raw magnitude. All-zero maps (Grad-CAM can be
  ``ReLU`` of a negative sum) have no distribution: they are skipped and counted in ``n_zero``.
* The class mix is the predicted classes, or for a multi-label head (rows with ``labels``) the positive
  labels: each image contributes each of its labels, and :data:`~camwatch.heads.NO_LABEL` when it has none
  (:func:`~camwatch.heads.mix_labels`); per-class summaries stay keyed by the explained class.
* Maps on different grids are resampled to the most common grid (ties: the grid seen first) with bilinear
  interpolation over pixel areas (``scipy.ndimage.zoom(order=1, grid_mode=True)``), clipped at 0 and
  renormalised. Averaging maps on different grids without resampling is meaningless, so there is one grid per
  reference, shared by every class.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camwatch.conventions import ALL_CLASSES
from camwatch.heads import mix_labels
from camwatch.monitoring.heatmaps import MeanHeatmap, loo_correlations, normalised_stack
from camwatch.statistics.registry import ENGINE_KEYS, UNKNOWN_CATEGORY

logger = logging.getLogger(__name__)

#: Derived statistic: r of an image's normalised map with its class's reference mean map.
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
    labels: tuple[int, ...] | None = None  # a multi-label head's positive labels (class mix)
    category_values: Mapping[str, str | None] = field(default_factory=dict)  # categorical properties

    def category(self, name: str) -> str:
        """The row's value of categorical property ``name``; :data:`UNKNOWN_CATEGORY` when missing."""
        return self.category_values.get(name) or UNKNOWN_CATEGORY

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


# ---------------------------------------------------------------------------------------------- reference


@dataclass
class ReferenceSummary:
    """Per class (and overall, ``-1``): statistic summaries, the mean normalised heatmap, the class mix."""

    class_counts: dict[int, int]
    stats: dict[tuple[str, int], StatSummary]
    heatmaps: dict[int, MeanHeatmap]
    max_values: int = 5000
    seed: int = 0
    label_counts: dict[int, int] | None = None  # multi-label class mix (positive labels), else None
    categories: dict[str, dict[str, int]] = field(default_factory=dict)  # property -> value -> images

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

    def category_labels(self, name: str) -> np.ndarray:
        """The mix of categorical property ``name`` as a label array (counts expanded, values sorted)."""
        counts = self.categories.get(name, {})
        values = sorted(counts)
        return np.repeat(np.asarray(values, dtype=object), [counts[v] for v in values])

    def class_labels(self) -> np.ndarray:
        """The class mix as a label array (``class_counts``, or ``label_counts`` for multi-label references,
        expanded), for categorical drift tests."""
        counts = self.class_counts if self.label_counts is None else self.label_counts
        classes = sorted(counts)
        return np.repeat(np.asarray(classes, dtype=np.int64), [counts[c] for c in classes])

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
            **({} if self.label_counts is None else
               {"label_counts": {str(c): n for c, n in sorted(self.label_counts.items())}}),
            "categories": {name: dict(sorted(counts.items())) for name, counts in sorted(self.categories.items())},
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
            label_counts=None if data.get("label_counts") is None else
            {int(c): int(n) for c, n in data["label_counts"].items()},
            categories={str(name): {str(v): int(n) for v, n in counts.items()}
                        for name, counts in data.get("categories", {}).items()},
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
    label_counts = None
    if any(row.labels is not None for row in rows):
        mix = np.asarray([c for row in rows for c in mix_labels(row.class_index, row.labels)], dtype=np.int64)
        values, n = np.unique(mix, return_counts=True)
        label_counts = {int(c): int(k) for c, k in zip(values.tolist(), n.tolist(), strict=True)}
    categories: dict[str, dict[str, int]] = {}
    for name in sorted({k for row in rows for k in row.category_values}):
        values, n = np.unique(np.asarray([row.category(name) for row in rows], dtype=object), return_counts=True)
        categories[name] = {str(v): int(c) for v, c in zip(values, n, strict=True)}
    return ReferenceSummary(
        class_counts=counts, stats=stats, heatmaps=heatmaps, max_values=max_values, seed=seed,
        label_counts=label_counts, categories=categories,
    )
