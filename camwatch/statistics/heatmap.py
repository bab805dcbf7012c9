"""Per-image heatmap statistics: pure functions from a native CAM map to the stored values.

:func:`compute_statistics` resamples the native map onto the working grid (:mod:`camwatch.statistics.grid`),
then reduces it to the values listed in :data:`camwatch.statistics.registry.HEATMAP_KEYS`. Definitions and
conventions are in ``docs/metrics.md`` and :data:`camwatch.statistics.registry.STATISTICS`; in short, with
``h`` the working-grid map, ``p = h / sum(h)`` and ``(x, y)`` cell centres normalised to the image:

- centroid = ``sum p (x, y)``; peak = centre of the first argmax cell; peak_value = ``h`` there (raw).
- spread = ``sqrt(sum p ((x - mu_x)^2 W^2 + (y - mu_y)^2 H^2)) / sqrt(W^2 + H^2)``.
- elongation = ``sqrt(l_max / l_min)`` of the pixel covariance plus the within-cell variance
  ``diag((W/cols)^2, (H/rows)^2) / 12`` (the map read as piecewise constant), so it is always finite.
- entropy = ``-sum p log p / log N``; gini = ``sum_k (2k - N - 1) a_k / (N sum a)``.
- border_energy, top5_share, and with a region energy_outside, object_area_fraction, pointing_hit,
  cam_box_iou; the CAM box (largest 8-connected component above a threshold) is always computed.

A map whose working-grid maximum is <= 0 has state ``"zero"`` (only object_area_fraction is set); any
non-finite native value gives state ``"nonfinite"`` (all None). No NaN is ever returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, get_args

import numpy as np
from scipy import ndimage

from camwatch.regions import ObjectRegion
from camwatch.statistics.grid import (
    cell_centres,
    check_extent,
    check_image_size,
    resample,
    resample_to_image,
    working_grid_shape,
)
from camwatch.statistics.region import check_region, iou, near_object, object_boxes, region_coverage
from camwatch.statistics.registry import CAM_BOX_KEYS, ENGINE_KEYS, HEATMAP_KEYS, STATISTICS, StatisticDef

__all__ = [
    "DEFAULT_CONFIG",
    "ENGINE_KEYS",
    "HEATMAP_KEYS",
    "STATISTICS",
    "HeatmapStats",
    "StatisticDef",
    "StatsConfig",
    "compute_statistics",
    "iou",
    "region_coverage",
    "resample_to_image",
    "working_grid_shape",
]

State = Literal["ok", "zero", "nonfinite"]
HEATMAP_STATES: tuple[str, ...] = get_args(State)

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class StatsConfig:
    """Parameters of the statistics (defaults are the documented ones)."""

    working_longest: int = 224  # cells on the working grid's longest side
    border_band: float = 0.10  # band width, fraction of width (left/right) and height (top/bottom)
    top_fraction: float = 0.05  # share of cells counted by top5_share
    pointing_tolerance_px: float = 15.0  # pointing game tolerance, original pixels
    cam_box_threshold: float = 0.20  # CAM box threshold, fraction of the working-grid maximum

    def __post_init__(self) -> None:
        if isinstance(self.working_longest, bool) or not isinstance(self.working_longest, int) \
                or self.working_longest < 2:
            raise ValueError(f"working_longest must be an integer >= 2, got {self.working_longest!r}")
        if not 0.0 < self.border_band < 0.5:
            raise ValueError(f"border_band must be in (0, 0.5), got {self.border_band}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if not (math.isfinite(self.pointing_tolerance_px) and self.pointing_tolerance_px >= 0.0):
            raise ValueError(f"pointing_tolerance_px must be finite and >= 0, got {self.pointing_tolerance_px}")
        if not 0.0 < self.cam_box_threshold <= 1.0:
            raise ValueError(f"cam_box_threshold must be in (0, 1], got {self.cam_box_threshold}")


DEFAULT_CONFIG = StatsConfig()


@dataclass(frozen=True)
class HeatmapStats:
    """Result of :func:`compute_statistics`.

    ``values`` has exactly the keys :data:`HEATMAP_KEYS` (Python floats or None, never NaN);
    ``cam_box_px`` is the CAM box ``(x0, y0, x1, y1)`` in original pixels (half-open), for drawing.
    """

    state: State
    values: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(HEATMAP_KEYS))
    cam_box_px: tuple[float, float, float, float] | None = None


@lru_cache(maxsize=32)
def _sorted_weights(n: int) -> np.ndarray:
    """Gini weights ``2k - n - 1`` for ``k = 1..n`` (read-only)."""
    weights = 2.0 * np.arange(1, n + 1, dtype=np.float64) - n - 1.0
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=32)
def _inner_slices(rows: int, cols: int, band: float) -> tuple[slice, slice]:
    """Rows and columns whose centre is at least ``band`` from every edge (the complement of the band)."""

    def inner(n: int) -> slice:
        centres = cell_centres(n)
        keep = np.flatnonzero((centres >= band) & (centres <= 1.0 - band))
        return slice(int(keep[0]), int(keep[-1]) + 1) if keep.size else slice(0, 0)

    return inner(rows), inner(cols)


def _validated_native(native: object) -> np.ndarray:
    arr = np.asarray(native)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"native heatmap must be a non-empty 2-D array (rows, cols), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise ValueError(f"native heatmap must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _cam_box(h: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    """Normalised ``(x0, y0, x1, y1)`` (cell edges) of the largest 8-connected component of
    ``h >= threshold``; ties in area go to the component found first in row-major order."""
    component, count = ndimage.label(h >= threshold, structure=_EIGHT_CONNECTED)
    if count > 1:
        sizes = np.bincount(component.ravel())
        sizes[0] = 0
        component = component == int(np.argmax(sizes))
    row_hit = np.flatnonzero(component.any(axis=1))
    col_hit = np.flatnonzero(component.any(axis=0))
    rows, cols = h.shape
    return (float(col_hit[0]) / cols, float(row_hit[0]) / rows, float(col_hit[-1] + 1) / cols,
            float(row_hit[-1] + 1) / rows)


def _clip01(value: float) -> float:
    """Clamp rounding excursions (e.g. 1 + 1e-16) of a quantity that is in [0, 1] by definition."""
    return min(1.0, max(0.0, float(value)))


def _moment_values(h: np.ndarray, total: float, width: int, height: int) -> dict[str, float]:
    """Centroid, spread and elongation from the first and second moments (covariance in pixels)."""
    rows, cols = h.shape
    xc, yc = cell_centres(cols), cell_centres(rows)
    col_mass, row_mass = h.sum(axis=0) / total, h.sum(axis=1) / total
    mu_x, mu_y = float(col_mass @ xc), float(row_mass @ yc)
    dx, dy = xc - mu_x, yc - mu_y
    var_x = float(col_mass @ (dx * dx)) * width**2
    var_y = float(row_mass @ (dy * dy)) * height**2
    cov_xy = float(dy @ h @ dx) / total * width * height
    # Elongation uses the covariance of the piecewise-constant map: + cell variance (size^2 / 12).
    cell_var_x, cell_var_y = (width / cols) ** 2 / 12.0, (height / rows) ** 2 / 12.0
    a, d = var_x + cell_var_x, var_y + cell_var_y
    lam_max = 0.5 * (a + d) + math.hypot(0.5 * (a - d), cov_xy)
    # det >= cell_var_x * cell_var_y > 0 exactly (the pixel covariance is PSD); the bound only absorbs
    # rounding. det / lam_max is the smaller eigenvalue without cancellation.
    lam_min = max(a * d - cov_xy * cov_xy, cell_var_x * cell_var_y) / lam_max
    return {
        "centroid_x": _clip01(mu_x),
        "centroid_y": _clip01(mu_y),
        "spread": math.sqrt(max(var_x + var_y, 0.0)) / math.hypot(width, height),
        "elongation": max(1.0, math.sqrt(lam_max / lam_min)),
    }


def _distribution_values(h: np.ndarray, total: float, config: StatsConfig) -> dict[str, float]:
    """Entropy, Gini, top-cell share and border energy of the working-grid map."""
    n = h.size
    # -sum p log p = log S - sum h log h / S
    log_h = np.log(h, out=np.zeros_like(h), where=h > 0.0)
    entropy = (math.log(total) - float(np.vdot(h, log_h)) / total) / math.log(n)
    # The sort dominates the cost of this module; float32 halves it (values <= 1, rounding < 6e-8).
    ascending = np.sort(h.astype(np.float32), axis=None)
    sorted_total = float(ascending.sum(dtype=np.float64))
    top = max(1, math.ceil(config.top_fraction * n - 1e-9))
    inner_rows, inner_cols = _inner_slices(*h.shape, config.border_band)
    return {
        "entropy": _clip01(entropy),
        "gini": _clip01(float(_sorted_weights(n) @ ascending) / (n * sorted_total)),
        "top5_share": _clip01(float(ascending[n - top:].sum(dtype=np.float64)) / sorted_total),
        "border_energy": _clip01(1.0 - float(h[inner_rows, inner_cols].sum()) / total),
    }


def compute_statistics(native: np.ndarray, width: int, height: int, *,
                       extent: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                       region: ObjectRegion | None = None,
                       config: StatsConfig = DEFAULT_CONFIG) -> HeatmapStats:
    """Statistics of one native heatmap for a ``width x height`` original image.

    ``native`` (2-D, raw non-negative magnitudes; negative values are treated as 0) spans ``extent`` in
    normalised image coordinates. ``region`` (boxes and/or mask, their union is the object) enables
    energy_outside, object_area_fraction, pointing_hit and cam_box_iou. Raises ``ValueError`` on a
    malformed native map, extent, image size or region mask; otherwise never fails and never returns NaN.
    """
    arr = _validated_native(native)
    ext = check_extent(extent)
    check_image_size(width, height)
    if region is not None:
        check_region(region, width, height)
    if not np.isfinite(arr).all():
        return HeatmapStats("nonfinite")

    rows, cols = working_grid_shape(width, height, config.working_longest)
    coverage = region_coverage(region, width, height, rows, cols) if region is not None else None
    values: dict[str, float | None] = dict.fromkeys(HEATMAP_KEYS)
    if coverage is not None:
        values["object_area_fraction"] = _clip01(coverage.mean())

    native_max = float(arr.max())
    if native_max <= 0.0:
        return HeatmapStats("zero", values)
    # Scale to max 1 before resampling: no overflow/underflow whatever the raw magnitudes are.
    h = resample(np.maximum(arr, 0.0) / native_max, ext, rows, cols)
    peak_i, peak_j = divmod(int(np.argmax(h)), cols)
    h_max = float(h[peak_i, peak_j])
    if h_max <= 0.0:  # all mass outside the image (e.g. only in the letterbox padding)
        return HeatmapStats("zero", values)

    total = float(h.sum())
    peak_x, peak_y = float(cell_centres(cols)[peak_j]), float(cell_centres(rows)[peak_i])
    values.update(peak_x=peak_x, peak_y=peak_y, peak_value=h_max * native_max)
    values.update(_moment_values(h, total, width, height))
    values.update(_distribution_values(h, total, config))
    box = _cam_box(h, config.cam_box_threshold * h_max)
    values.update(zip(CAM_BOX_KEYS, box, strict=True))
    cam_box_px = (box[0] * width, box[1] * height, box[2] * width, box[3] * height)

    if region is not None and coverage is not None:
        values["energy_outside"] = _clip01(1.0 - float(np.vdot(h, coverage)) / total)
        hit = near_object(region, peak_x * width, peak_y * height, config.pointing_tolerance_px, width, height)
        values["pointing_hit"] = 1.0 if hit else 0.0
        values["cam_box_iou"] = max((iou(cam_box_px, b) for b in object_boxes(region, width, height)),
                                    default=0.0)
    return HeatmapStats("ok", values, cam_box_px)
