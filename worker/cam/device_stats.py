"""Heatmap statistics of a whole batch on the model's device, before anything is copied back.

The GPU path (benchmarks/gpu_throughput.py) keeps the maps on the device and copies back one small
``(N, K)`` table instead of ``N`` maps. The definitions are those of
:func:`camwatch.statistics.heatmap.compute_statistics` for a full-frame extent and no object region —
the native map scaled to max 1, resampled bilinearly onto the image's working grid with the same
interpolation matrices (:func:`camwatch.statistics.grid.interpolation_matrix`), then the peak, centroid,
spread, entropy, Gini, top-cell share and border energy — computed as batched tensor operations. A map
that is zero everywhere gives NaN rows (``compute_statistics`` reports it as ``zero``); region statistics
and the CAM box (a connected-component search) stay on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from camwatch.statistics.grid import cell_centres, interpolation_matrix, working_grid_shape
from camwatch.statistics.heatmap import DEFAULT_CONFIG, StatsConfig

DEVICE_STAT_KEYS = ("peak_x", "peak_y", "peak_value", "centroid_x", "centroid_y", "spread", "entropy", "gini",
                    "top5_share", "border_energy")


def _inner_mask(n: int, band: float) -> np.ndarray:
    centres = cell_centres(n)
    return (centres >= band) & (centres <= 1.0 - band)


def device_statistics(maps: torch.Tensor, width: int, height: int,
                      config: StatsConfig = DEFAULT_CONFIG) -> torch.Tensor:
    """``(N, len(DEVICE_STAT_KEYS))`` statistics of the raw maps ``(N, h, w)`` of ``width x height``
    images, on the maps' device (float64 on a CPU, float32 on a GPU)."""
    dtype = torch.float64 if maps.device.type == "cpu" else torch.float32
    dev = maps.device
    n, h, w = maps.shape
    rows, cols = working_grid_shape(width, height, config.working_longest)
    a_y = torch.tensor(np.array(interpolation_matrix(rows, h, 0.0, 1.0)), dtype=dtype, device=dev)
    a_x = torch.tensor(np.array(interpolation_matrix(cols, w, 0.0, 1.0)), dtype=dtype, device=dev)
    native = maps.to(dtype).clamp_min(0.0)
    native_max = native.flatten(1).amax(dim=1)
    scaled = native / native_max.clamp_min(torch.finfo(dtype).tiny)[:, None, None]
    grid = a_y @ scaled @ a_x.T  # (N, rows, cols)
    flat = grid.flatten(1)
    total = flat.sum(dim=1)
    h_max, peak = flat.max(dim=1)
    xc = torch.tensor(np.array(cell_centres(cols)), dtype=dtype, device=dev)
    yc = torch.tensor(np.array(cell_centres(rows)), dtype=dtype, device=dev)
    col_mass, row_mass = grid.sum(dim=1) / total[:, None], grid.sum(dim=2) / total[:, None]
    mu_x, mu_y = col_mass @ xc, row_mass @ yc
    var_x = (col_mass * (xc[None] - mu_x[:, None]) ** 2).sum(dim=1) * width**2
    var_y = (row_mass * (yc[None] - mu_y[:, None]) ** 2).sum(dim=1) * height**2
    spread = (var_x + var_y).clamp_min(0.0).sqrt() / math.hypot(width, height)
    cells = rows * cols
    log_h = torch.where(flat > 0, flat.clamp_min(torch.finfo(dtype).tiny).log(), torch.zeros_like(flat))
    entropy = (total.log() - (flat * log_h).sum(dim=1) / total) / math.log(cells)
    ascending = flat.sort(dim=1).values
    weights = 2.0 * torch.arange(1, cells + 1, dtype=dtype, device=dev) - cells - 1.0
    gini = (ascending @ weights) / (cells * total)
    top = max(1, math.ceil(config.top_fraction * cells - 1e-9))
    top_share = ascending[:, cells - top:].sum(dim=1) / total
    inner = torch.as_tensor(np.outer(_inner_mask(rows, config.border_band), _inner_mask(cols, config.border_band)),
                            dtype=dtype, device=dev).flatten()
    border = 1.0 - (flat @ inner) / total
    peak_i, peak_j = peak // cols, peak % cols
    out = torch.stack([xc[peak_j], yc[peak_i], h_max * native_max, mu_x, mu_y, spread, entropy.clamp(0, 1),
                       gini.clamp(0, 1), top_share.clamp(0, 1), border.clamp(0, 1)], dim=1)
    zero = (native_max <= 0) | (h_max <= 0)
    return torch.where(zero[:, None], torch.full_like(out, float("nan")), out)
