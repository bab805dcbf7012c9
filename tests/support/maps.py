"""Analytic heatmaps on known grids, for the statistics tests."""

from __future__ import annotations

import math
import warnings

import numpy as np

from camwatch.statistics.heatmap import HEATMAP_KEYS, HeatmapStats, compute_statistics

# Identity setting: a 224x168 image has a 168x224 working grid, so a native map of that shape with extent
# (0, 0, 1, 1) is used as is and one working cell is one original pixel.
W, H = 224, 168
# A 4:3 photo: 640x480 -> 168x224 working grid, cells of 640/224 = 480/168 = 2.857 pixels.
PW, PH = 640, 480


def pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y) of the identity grid."""
    y, x = np.mgrid[0:H, 0:W] + 0.5
    return x, y


def gaussian(mx: float, my: float, sx: float, sy: float, angle: float = 0.0) -> np.ndarray:
    """Gaussian on the identity grid, centre (mx, my) pixels, std sx, sy along axes rotated by angle."""
    x, y = pixel_grid()
    c, s = math.cos(angle), math.sin(angle)
    u = c * (x - mx) + s * (y - my)
    v = -s * (x - mx) + c * (y - my)
    return np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2)).astype(np.float32)


def hot_cell(row: int, col: int) -> np.ndarray:
    native = np.zeros((H, W), dtype=np.float32)
    native[row, col] = 1.0
    return native


def stats_of(native: np.ndarray, width: int = W, height: int = H, **kwargs: object) -> HeatmapStats:
    """compute_statistics with every warning turned into an error (the module must never warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return compute_statistics(native, width, height, **kwargs)  # type: ignore[arg-type]


def assert_clean(result: HeatmapStats) -> None:
    assert list(result.values) == list(HEATMAP_KEYS)
    for key, value in result.values.items():
        assert value is None or (type(value) is float and math.isfinite(value)), (key, value)
