"""Batched device statistics (worker/cam/device_stats.py) equal camwatch's per-image statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from camwatch.statistics.heatmap import compute_statistics
from worker.cam.device_stats import DEVICE_STAT_KEYS, device_statistics


@pytest.mark.parametrize(("shape", "size"), [((7, 7), (640, 480)), ((9, 12), (300, 451)), ((14, 14), (224, 224))])
def test_equal_to_compute_statistics(shape: tuple[int, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    maps = rng.gamma(0.6, 2.0, (5, *shape)) * (rng.random((5, *shape)) > 0.3)
    maps[1] *= 1e-6  # magnitudes do not matter
    maps[2] -= 0.5  # negative cells count as 0
    table = device_statistics(torch.from_numpy(maps), *size).numpy()
    for i in range(len(maps)):
        expected = compute_statistics(maps[i], *size).values
        for j, key in enumerate(DEVICE_STAT_KEYS):
            assert table[i, j] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), key  # the CPU sorts in float32


def test_a_zero_map_gives_a_row_of_nan() -> None:
    maps = torch.zeros(2, 7, 7, dtype=torch.float64)
    maps[1, 3, 4] = 2.0
    table = device_statistics(maps, 640, 480)
    assert all(math.isnan(v) for v in table[0].tolist())
    assert compute_statistics(maps[0].numpy(), 640, 480).state == "zero"
    expected = compute_statistics(maps[1].numpy(), 640, 480).values["peak_value"]
    assert 1.5 < expected < 2.0  # the resampled spike's peak
    assert table[1, DEVICE_STAT_KEYS.index("peak_value")] == pytest.approx(expected, rel=1e-9)
