"""Object-region statistics on analytic maps: energy outside, object area, pointing game, CAM box and IoU
(camwatch.statistics.region through compute_statistics)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camwatch.regions import ObjectRegion
from camwatch.statistics.heatmap import StatsConfig, iou, region_coverage
from camwatch.statistics.region import _box_union_fraction, _cell_edges
from tests.support.maps import PH, PW, H, W, hot_cell, stats_of

# -- object region -------------------------------------------------------------------------------------

@pytest.mark.parametrize("box", [(0.0, 0.0, 640.0, 480.0), (13.3, 27.9, 411.7, 300.2), (100.0, 50.0, 101.5, 50.7),
                                 (600.2, 400.1, 700.0, 900.0), (1.0, 1.0, 2.0, 479.0)])
def test_uniform_energy_inside_a_box_is_its_area_fraction(box: tuple[float, float, float, float]) -> None:
    x0, y0, x1, y1 = box
    area = (min(x1, PW) - x0) * (min(y1, PH) - y0) / (PW * PH)
    v = stats_of(np.ones((7, 7)), PW, PH, region=ObjectRegion(boxes=(box,))).values
    assert v["energy_outside"] == pytest.approx(1.0 - area, abs=1e-6)
    assert v["object_area_fraction"] == pytest.approx(area, abs=1e-12)


def test_overlapping_boxes_count_their_union_once() -> None:
    boxes = ((0.0, 0.0, 100.0, 100.0), (50.5, 50.5, 150.5, 150.5), (60.0, 60.0, 70.0, 70.0))
    union = 2 * 100.0**2 - 49.5**2
    coverage = region_coverage(ObjectRegion(boxes=boxes), PW, PH, 168, 224)
    assert coverage.max() <= 1.0
    assert coverage.mean() == pytest.approx(union / (PW * PH), rel=1e-12)


def test_box_axis_order_is_not_swapped() -> None:
    ramp = np.tile((np.arange(W, dtype=np.float32) + 0.5), (W, 1))  # square image, energy grows to the right
    tall_left = ObjectRegion(boxes=((0.0, 0.0, 56.0, 224.0),))  # x0, y0, x1, y1: the left quarter
    wide_top = ObjectRegion(boxes=((0.0, 0.0, 224.0, 56.0),))  # its transpose: the top quarter
    left = stats_of(ramp, W, W, region=tall_left).values["energy_outside"]
    top = stats_of(ramp, W, W, region=wide_top).values["energy_outside"]
    assert left == pytest.approx(1 - 1 / 16, abs=1e-12)  # sum_{j<56} (j+1/2) / sum_{j<224} (j+1/2) = 56^2/224^2
    assert top == pytest.approx(1 - 1 / 4, abs=1e-12)


def test_mask_region_equals_the_same_box_region() -> None:
    native = np.random.default_rng(5).random((7, 7)) ** 2
    box = (100, 50, 400, 380)
    mask = np.zeros((PH, PW), dtype=bool)
    mask[50:380, 100:400] = True
    by_box = stats_of(native, PW, PH, region=ObjectRegion(boxes=(box,))).values
    by_mask = stats_of(native, PW, PH, region=ObjectRegion(mask=mask)).values
    for key in ("energy_outside", "object_area_fraction", "pointing_hit", "cam_box_iou"):
        assert by_mask[key] == pytest.approx(by_box[key], abs=1e-9), key
    np.testing.assert_allclose(region_coverage(ObjectRegion(mask=mask), PW, PH, 168, 224),
                               region_coverage(ObjectRegion(boxes=(box,)), PW, PH, 168, 224), atol=1e-6)


def test_boxes_and_mask_cover_their_exact_union() -> None:
    box = (10.5, 10.25, 50.75, 40.5)
    mask = np.zeros((PH, PW), dtype=bool)
    mask[30:60, 20:70] = True  # rows 30-59, columns 20-69
    overlap = (50.75 - 20.0) * (40.5 - 30.0)
    union = (50.75 - 10.5) * (40.5 - 10.25) + 30 * 50 - overlap
    coverage = region_coverage(ObjectRegion(boxes=(box,), mask=mask), PW, PH, 168, 224)
    assert coverage.mean() * PW * PH == pytest.approx(union, rel=1e-6)
    assert coverage.max() <= 1.0


@pytest.mark.parametrize("edge, hit", [(110.5, 1.0), (115.5, 1.0), (120.5, 0.0)])
def test_pointing_game_with_tolerance(edge: float, hit: float) -> None:
    # Peak at pixel centre (100.5, 50.5); the object starts `edge - 100.5` pixels to its right.
    native = hot_cell(50, 100)
    box = ObjectRegion(boxes=((edge, 0.0, 200.0, 168.0),))
    assert stats_of(native, region=box).values["pointing_hit"] == hit
    mask = np.zeros((H, W), dtype=bool)
    mask[:, math.ceil(edge):] = True  # nearest mask pixel square starts at ceil(edge)
    expected_mask_hit = 1.0 if math.ceil(edge) - 100.5 <= 15.0 else 0.0
    assert stats_of(native, region=ObjectRegion(mask=mask)).values["pointing_hit"] == expected_mask_hit


def test_pointing_distance_is_euclidean_and_tolerance_configurable() -> None:
    native = hot_cell(50, 100)  # peak at (100.5, 50.5)
    diagonal_10 = ObjectRegion(boxes=((110.5, 60.5, 150.0, 100.0),))  # 10*sqrt(2) = 14.1 px away
    diagonal_12 = ObjectRegion(boxes=((112.5, 62.5, 150.0, 100.0),))  # 12*sqrt(2) = 17.0 px away
    assert stats_of(native, region=diagonal_10).values["pointing_hit"] == 1.0
    assert stats_of(native, region=diagonal_12).values["pointing_hit"] == 0.0
    strict = StatsConfig(pointing_tolerance_px=0.0)
    assert stats_of(native, region=diagonal_10, config=strict).values["pointing_hit"] == 0.0
    inside = ObjectRegion(boxes=((90.0, 40.0, 110.0, 60.0),))
    assert stats_of(native, region=inside, config=strict).values["pointing_hit"] == 1.0


def two_blobs() -> np.ndarray:
    native = np.zeros((H, W), dtype=np.float32)
    native[10:30, 20:60] = 1.0  # 800 cells, lower
    native[100:110, 150:160] = 2.0  # 100 cells, the global maximum
    return native


def test_cam_box_picks_the_largest_component() -> None:
    result = stats_of(two_blobs())
    v = result.values
    assert (v["cam_box_x0"], v["cam_box_y0"], v["cam_box_x1"], v["cam_box_y1"]) == (20 / W, 10 / H, 60 / W, 30 / H)
    assert result.cam_box_px == pytest.approx((20.0, 10.0, 60.0, 30.0))
    # Above 60% of the maximum only the small bright blob remains.
    bright = stats_of(two_blobs(), config=StatsConfig(cam_box_threshold=0.6))
    assert bright.cam_box_px == pytest.approx((150.0, 100.0, 160.0, 110.0))


def test_cam_box_components_are_eight_connected() -> None:
    native = np.zeros((H, W), dtype=np.float32)
    native[10:20, 10:20] = 1.0  # two 10x10 squares touching at one corner: one 200-cell component
    native[20:30, 20:30] = 1.0
    native[100:115, 100:110] = 1.0  # 150 cells: largest only under 4-connectivity
    assert stats_of(native).cam_box_px == pytest.approx((10.0, 10.0, 30.0, 30.0))


def test_cam_box_iou_against_object_boxes_and_mask() -> None:
    exact = ObjectRegion(boxes=((20.0, 10.0, 60.0, 30.0),))
    half = ObjectRegion(boxes=((20.0, 10.0, 40.0, 30.0), (200.0, 150.0, 210.0, 160.0)))
    assert stats_of(two_blobs(), region=exact).values["cam_box_iou"] == pytest.approx(1.0)
    assert stats_of(two_blobs(), region=half).values["cam_box_iou"] == pytest.approx(0.5)
    mask = np.zeros((H, W), dtype=bool)
    mask[10:30, 20:40] = True
    assert stats_of(two_blobs(), region=ObjectRegion(mask=mask)).values["cam_box_iou"] == pytest.approx(0.5)
    nowhere = ObjectRegion(boxes=((500.0, 500.0, 600.0, 600.0),))  # entirely outside the image
    v = stats_of(two_blobs(), region=nowhere).values
    assert (v["cam_box_iou"], v["pointing_hit"], v["energy_outside"], v["object_area_fraction"]) == (0.0, 0.0, 1.0, 0.0)


def test_iou_half_open_boxes() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges share no pixel
    assert iou((0, 0, 4, 2), (1, 1, 3, 5)) == pytest.approx(2 / (8 + 8 - 2))
    # wsolevaluation fixture: inclusive [1,2,5,6] vs [3,1,4,5] = 8/27, i.e. half-open (x1 + 1, y1 + 1).
    assert iou((1, 2, 6, 7), (3, 1, 5, 6)) == pytest.approx(8 / 27)


def test_without_region_the_region_values_are_none() -> None:
    v = stats_of(two_blobs()).values
    for key in ("energy_outside", "object_area_fraction", "pointing_hit", "cam_box_iou"):
        assert v[key] is None
    assert v["cam_box_x1"] is not None


# ------------------------------------------------------------------ union of many boxes, linear in the boxes



def _raster_union(boxes: list[tuple[int, int, int, int]], width: int, height: int) -> np.ndarray:
    """Pixel raster of the union of integer boxes: each box painted, independent of the module's algorithm."""
    raster = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        raster[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return raster


def _integer_boxes(width: int, height: int) -> st.SearchStrategy:
    corner = st.tuples(st.integers(-5, width + 5), st.integers(-5, height + 5), st.integers(1, width),
                       st.integers(1, height))
    return st.lists(corner.map(lambda c: (c[0], c[1], c[0] + c[2], c[1] + c[3])), min_size=1, max_size=80)


@settings(max_examples=80, deadline=None)
@given(_integer_boxes(36, 24), st.sampled_from([(24, 36), (12, 18), (6, 9), (3, 4)]))
def test_box_union_coverage_is_exact_for_any_boxes(boxes, grid) -> None:  # type: ignore[no-untyped-def]
    rows, cols = grid
    raster = _raster_union(boxes, 36, 24).astype(np.float64)
    expected = raster.reshape(rows, 24 // rows, cols, 36 // cols).mean(axis=(1, 3))
    got = _box_union_fraction(boxes, _cell_edges(cols, 36), _cell_edges(rows, 24))
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_twenty_thousand_boxes_are_exact_and_need_no_quadratic_memory() -> None:
    """4,000 boxes took 14 s and 1.1 GB as N x N matrices; the ring algorithm is linear in the boxes."""
    rng = np.random.default_rng(7)
    width, height = 1200, 900
    corners = rng.integers(0, [width, height], size=(20_000, 2))
    sizes = rng.integers(1, 40, size=(20_000, 2))
    boxes = [(int(x), int(y), int(x + w), int(y + h)) for (x, y), (w, h) in zip(corners, sizes, strict=True)]
    raster = _raster_union(boxes, width, height)[:, :].astype(np.float64)
    expected = raster.reshape(150, 6, 200, 6).mean(axis=(1, 3))
    tracemalloc.start()
    got = _box_union_fraction(boxes, _cell_edges(200, width), _cell_edges(150, height))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert peak < 200 * 2**20  # an N x N float matrix of 40,000 edges would be 12.8 GB
