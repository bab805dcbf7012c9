"""Heatmap statistics on analytic maps (camwatch.statistics.heatmap, camwatch.statistics.grid, camwatch.statistics.region)."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
from scipy import ndimage

from camwatch.regions import ObjectRegion
from camwatch.statistics.heatmap import (
    ENGINE_KEYS,
    HEATMAP_KEYS,
    STATISTICS,
    HeatmapStats,
    StatsConfig,
    compute_statistics,
    iou,
    region_coverage,
    resample_to_image,
    working_grid_shape,
)
from tests.support import REPO

DOCS = REPO / "docs" / "metrics.md"

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


# -- working grid and resampling ---------------------------------------------------------------------

def test_working_grid_shape_keeps_aspect_and_longest_side() -> None:
    assert working_grid_shape(640, 480) == (168, 224)
    assert working_grid_shape(480, 640) == (224, 168)
    assert working_grid_shape(500, 500, longest=100) == (100, 100)
    assert working_grid_shape(10000, 10) == (1, 224)  # at least one cell on the short side
    assert working_grid_shape(333, 1000, longest=10) == (10, 3)


@pytest.mark.parametrize("width, height, longest", [(0, 10, 224), (10, -1, 224), (10.0, 10, 224),
                                                    (True, 10, 224), (10, 10, 0)])
def test_working_grid_shape_rejects_bad_sizes(width: object, height: object, longest: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        working_grid_shape(width, height, longest)  # type: ignore[arg-type]


def test_resampling_is_identity_on_the_working_grid() -> None:
    native = np.random.default_rng(1).random((168, 224)).astype(np.float32)
    np.testing.assert_array_equal(resample_to_image(native, (0, 0, 1, 1), PW, PH), native)


def test_resampling_matches_bilinear_half_pixel_convention() -> None:
    # Two native cells [0, 1] over a 4-cell row: centres at s = -0.25, 0.25, 0.75, 1.25 (clamped at the ends).
    out = resample_to_image(np.array([[0.0, 1.0]]), (0, 0, 1, 1), 4, 1, longest=4)
    np.testing.assert_allclose(out, [[0.0, 0.25, 0.75, 1.0]])
    # Independent oracle: map_coordinates (order 1, edge clamp) at s = (k + 0.5) * n_in / n_out - 0.5.
    native = np.random.default_rng(2).random((7, 7))
    s_row = (np.arange(168) + 0.5) * 7 / 168 - 0.5
    s_col = (np.arange(224) + 0.5) * 7 / 224 - 0.5
    rr, cc = np.meshgrid(s_row, s_col, indexing="ij")
    expected = ndimage.map_coordinates(native, [rr, cc], order=1, mode="nearest")
    np.testing.assert_allclose(resample_to_image(native, (0, 0, 1, 1), PW, PH), expected, rtol=1e-6)


def test_center_crop_extent_leaves_the_sides_zero() -> None:
    extent = (0.125, 0.0, 0.875, 1.0)
    out = resample_to_image(np.ones((7, 7)), extent, PW, PH)
    centres = (np.arange(224) + 0.5) / 224
    seen = (centres >= 0.125) & (centres <= 0.875)
    assert np.all(out[:, ~seen] == 0.0) and np.all(out[:, seen] == 1.0)
    result = stats_of(np.ones((7, 7)), PW, PH, extent=extent)
    assert result.values["centroid_x"] == pytest.approx(0.5)
    band = ((centres < 0.1) | (centres > 0.9))[None, :] | (((np.arange(168) + 0.5) / 168 < 0.1)
                                                           | ((np.arange(168) + 0.5) / 168 > 0.9))[:, None]
    assert result.values["border_energy"] == pytest.approx((band & seen[None, :]).sum() / (168 * seen.sum()))


def test_letterbox_padding_is_cropped_away() -> None:
    extent = (0.0, -0.25, 1.0, 1.25)  # 2:1 image padded to a square: 1/6 of the input on top and bottom
    hot_padding = np.zeros((16, 16))
    hot_padding[:2] = 5.0  # the padding spans 2.67 native rows; rows 0-1's bilinear support ends above the image
    hot_padding[-2:] = 5.0
    assert stats_of(hot_padding, 400, 200, extent=extent).state == "zero"
    assert np.all(resample_to_image(hot_padding, extent, 400, 200) == 0.0)
    uniform = stats_of(np.ones((16, 16)), 400, 200, extent=extent)
    assert uniform.values["entropy"] == pytest.approx(1.0, abs=1e-12)
    # A native row centred on the image's middle stays there.
    middle = np.zeros((15, 15))
    middle[7] = 1.0
    assert stats_of(middle, 400, 200, extent=(0.0, -0.25, 1.0, 1.25)).values["centroid_y"] == pytest.approx(0.5)


# -- moments -----------------------------------------------------------------------------------------

def test_gaussian_centroid_and_spread() -> None:
    sigma = 12.0
    result = stats_of(gaussian(100.3, 80.7, sigma, sigma))
    assert result.state == "ok"
    assert result.values["centroid_x"] == pytest.approx(100.3 / W, abs=0.01 / W)
    assert result.values["centroid_y"] == pytest.approx(80.7 / H, abs=0.01 / H)
    assert result.values["peak_x"] == pytest.approx(100.5 / W) and result.values["peak_y"] == pytest.approx(80.5 / H)
    assert result.values["peak_value"] == pytest.approx(math.exp(-0.5 * (0.2**2 + 0.2**2) / sigma**2), rel=1e-6)
    assert result.values["spread"] == pytest.approx(math.sqrt(2) * sigma / math.hypot(W, H), rel=1e-3)
    assert result.values["elongation"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("width, height", [(640, 480), (1000, 250), (250, 1000)])
def test_spread_of_a_uniform_map_is_in_original_pixels(width: int, height: int) -> None:
    rows, cols = working_grid_shape(width, height)
    v = stats_of(np.ones((7, 7)), width, height).values
    # Discrete uniform on the cell centres: var = L^2 (1 - 1/n^2) / 12 per axis, in pixels.
    var = (width**2 * (1 - 1 / cols**2) + height**2 * (1 - 1 / rows**2)) / 12
    assert v["spread"] == pytest.approx(math.sqrt(var) / math.hypot(width, height), rel=1e-9)
    assert (v["centroid_x"], v["centroid_y"]) == (pytest.approx(0.5), pytest.approx(0.5))


@pytest.mark.parametrize("angle", [0.0, math.pi / 4, math.pi / 2])
def test_elongation_of_an_anisotropic_gaussian(angle: float) -> None:
    result = stats_of(gaussian(112.0, 84.0, 16.0, 8.0, angle))
    cell_var = 1.0 / 12.0  # square one-pixel cells: the within-cell term is isotropic
    expected = math.sqrt((16.0**2 + cell_var) / (8.0**2 + cell_var))
    assert result.values["elongation"] == pytest.approx(expected, rel=2e-3)
    assert result.values["spread"] == pytest.approx(math.sqrt(16.0**2 + 8.0**2) / math.hypot(W, H), rel=2e-3)


def test_elongation_of_a_line_is_finite() -> None:
    line = np.zeros((H, W), dtype=np.float32)
    line[84, :] = 1.0
    value = stats_of(line).values["elongation"]
    # var_x of 224 unit cells = (224^2 - 1)/12 (+1/12 cell term), var_y = 0 (+1/12): ratio 224.
    assert value == pytest.approx(224.0, rel=1e-9)


def test_peak_ties_take_the_first_cell_in_row_major_order() -> None:
    native = np.zeros((H, W), dtype=np.float32)
    native[30, 200] = native[30, 10] = native[100, 5] = 2.0
    result = stats_of(native)
    assert (result.values["peak_x"], result.values["peak_y"]) == (10.5 / W, 30.5 / H)


def test_raw_magnitude_only_changes_peak_value() -> None:
    native = np.random.default_rng(4).random((7, 7))
    base = stats_of(native, PW, PH).values
    peak = float(base["peak_value"] or 0.0)
    assert 0.5 * native.max() < peak <= native.max()  # raw units; bilinear never exceeds the native max
    for scale in (1e-30, 1e3, 1e300):
        scaled = stats_of(native * scale, PW, PH).values
        assert scaled["peak_value"] == pytest.approx(peak * scale, rel=1e-12)
        for key in HEATMAP_KEYS:
            if key != "peak_value" and base[key] is not None:
                assert scaled[key] == pytest.approx(base[key], rel=1e-6, abs=1e-9), key


# -- distribution shape --------------------------------------------------------------------------------

def test_uniform_map_scores_the_chance_levels() -> None:
    result = stats_of(np.ones((7, 7), dtype=np.float32), PW, PH)
    v = result.values
    assert v["entropy"] == pytest.approx(1.0, abs=1e-12)
    assert v["gini"] == pytest.approx(0.0, abs=1e-12)
    n = 168 * 224
    assert v["top5_share"] == pytest.approx(math.ceil(0.05 * n) / n, rel=1e-9)
    xc, yc = (np.arange(224) + 0.5) / 224, (np.arange(168) + 0.5) / 168
    band_x = (xc < 0.1) | (xc > 0.9)
    band_y = (yc < 0.1) | (yc > 0.9)
    in_band = band_y[:, None] | band_x[None, :]
    assert v["border_energy"] == pytest.approx(in_band.mean(), rel=1e-9)
    assert v["border_energy"] == pytest.approx(1 - (134 * 180) / n, rel=1e-12)  # 17 rows, 22 columns per side
    assert (v["cam_box_x0"], v["cam_box_y0"], v["cam_box_x1"], v["cam_box_y1"]) == (0.0, 0.0, 1.0, 1.0)
    assert result.cam_box_px == (0.0, 0.0, float(PW), float(PH))


def test_single_hot_cell_is_maximally_concentrated() -> None:
    result = stats_of(hot_cell(50, 100))
    v = result.values
    n = H * W
    assert v["gini"] == pytest.approx(1 - 1 / n, abs=1e-9)
    assert v["top5_share"] == 1.0
    assert v["entropy"] == pytest.approx(0.0, abs=1e-12)
    assert v["elongation"] == pytest.approx(1.0)
    assert v["spread"] == pytest.approx(0.0, abs=1e-12)
    assert (v["cam_box_x0"], v["cam_box_y0"], v["cam_box_x1"], v["cam_box_y1"]) == (100 / W, 50 / H, 101 / W, 51 / H)
    assert result.cam_box_px == pytest.approx((100.0, 50.0, 101.0, 51.0))


def test_border_energy_band_width_is_configurable() -> None:
    frame = np.zeros((H, W), dtype=np.float32)
    frame[:, :5] = 1.0  # a hot strip 5 pixels wide on the left edge
    assert stats_of(frame).values["border_energy"] == pytest.approx(1.0)
    # A 1% band holds columns 0-1 (centres < 2.24 px) and rows 0-1, 166-167 (centres < 1.68 px).
    narrow = stats_of(frame, config=StatsConfig(border_band=0.01)).values["border_energy"]
    assert narrow == pytest.approx((2 * H + 3 * 4) / (5 * H))


def test_border_band_is_strictly_closer_than_the_band_width() -> None:
    # 5x5 grid: the first and last cell centres sit exactly at 10% and 90%, which is not "closer than 10%".
    coarse = StatsConfig(working_longest=5)
    assert stats_of(np.ones((5, 5)), 50, 50, config=coarse).values["border_energy"] == 0.0
    wider = StatsConfig(working_longest=5, border_band=0.15)
    assert stats_of(np.ones((5, 5)), 50, 50, config=wider).values["border_energy"] == pytest.approx(16 / 25)


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


# -- states, validation, invariants -------------------------------------------------------------------

def test_zero_map_has_an_explicit_state() -> None:
    region = ObjectRegion(boxes=((0.0, 0.0, 320.0, 480.0),))
    for native in (np.zeros((7, 7)), -np.ones((7, 7))):
        result = stats_of(native, PW, PH, region=region)
        assert result.state == "zero" and result.cam_box_px is None
        assert_clean(result)
        assert result.values["object_area_fraction"] == pytest.approx(0.5)
        assert all(v is None for k, v in result.values.items() if k != "object_area_fraction")
    assert stats_of(np.zeros((7, 7)), PW, PH).values["object_area_fraction"] is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_map_has_an_explicit_state(bad: float) -> None:
    native = np.ones((7, 7))
    native[3, 4] = bad
    result = stats_of(native, PW, PH, region=ObjectRegion(boxes=((0.0, 0.0, 10.0, 10.0),)))
    assert result.state == "nonfinite" and result.cam_box_px is None
    assert all(v is None for v in result.values.values())


@pytest.mark.parametrize("native, kwargs, message", [
    (np.ones((2, 7, 7)), {}, "2-D"),
    (np.ones((0, 7)), {}, "2-D"),
    (np.array([["a"]]), {}, "real numbers"),
    (np.ones((7, 7)), {"extent": (1, 0, 0, 1)}, "ex1 > ex0"),
    (np.ones((7, 7)), {"extent": (0, 0, 1)}, "four numbers"),
    (np.ones((7, 7)), {"extent": (0, 0, 1, np.nan)}, "non-finite"),
    (np.ones((7, 7)), {"region": ObjectRegion(mask=np.ones((10, 10), dtype=bool))}, "mask has shape"),
])
def test_invalid_inputs_raise_clear_errors(native: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_statistics(native, PW, PH, **kwargs)


def test_invalid_image_size_and_config_raise() -> None:
    with pytest.raises(ValueError, match="width"):
        compute_statistics(np.ones((7, 7)), 640.0, 480)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="height"):
        compute_statistics(np.ones((7, 7)), 640, 0)
    for bad in ({"working_longest": 1}, {"border_band": 0.5}, {"top_fraction": 0.0},
                {"pointing_tolerance_px": -1.0}, {"cam_box_threshold": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            StatsConfig(**bad)  # type: ignore[arg-type]


def test_random_maps_never_produce_nan_or_warnings() -> None:
    rng = np.random.default_rng(6)
    extents = [(0, 0, 1, 1), (0, -0.1667, 1, 1.1667), (0.125, 0, 0.875, 1), (-0.2, 0.0, 1.2, 1.0)]
    for trial in range(40):
        shape = tuple(rng.integers(1, 12, size=2))
        native = rng.random(shape) ** rng.uniform(1, 8) * (rng.random(shape) > rng.uniform(0, 0.9))
        width, height = (int(v) for v in rng.integers(1, 900, size=2))
        region = ObjectRegion(boxes=((rng.uniform(-50, width), rng.uniform(-50, height),
                                      width + 10.0, height + 10.0),)) if trial % 2 else None
        result = stats_of(native, width, height, extent=extents[trial % 4], region=region)
        assert result.state in ("ok", "zero")
        assert_clean(result)
        if result.state == "ok":
            x0, y0, x1, y1 = (float(result.values[k] or 0.0) for k in ("cam_box_x0", "cam_box_y0",
                                                                          "cam_box_x1", "cam_box_y1"))
            assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
            assert float(result.values["elongation"] or 0.0) >= 1.0
            assert 0.0 <= float(result.values["gini"] or -1.0) < 1.0


# -- registry and documentation ------------------------------------------------------------------------

def test_engine_keys_are_documented_not_computed() -> None:
    assert set(ENGINE_KEYS) == {"raw_max", "raw_sum", "target_logit", "confidence"}
    assert all(STATISTICS[k].source == "engine" for k in ENGINE_KEYS)
    assert not set(ENGINE_KEYS) & set(stats_of(np.ones((7, 7)), PW, PH).values)


# Every statistic and the test that exercises it (kept equal to the registry below).
KEY_TESTS = {
    "centroid_x": "test_gaussian_centroid_and_spread",
    "centroid_y": "test_gaussian_centroid_and_spread",
    "peak_x": "test_peak_ties_take_the_first_cell_in_row_major_order",
    "peak_y": "test_gaussian_centroid_and_spread",
    "peak_value": "test_raw_magnitude_only_changes_peak_value",
    "spread": "test_gaussian_centroid_and_spread",
    "elongation": "test_elongation_of_an_anisotropic_gaussian",
    "entropy": "test_uniform_map_scores_the_chance_levels",
    "gini": "test_single_hot_cell_is_maximally_concentrated",
    "border_energy": "test_border_energy_band_width_is_configurable",
    "top5_share": "test_single_hot_cell_is_maximally_concentrated",
    "energy_outside": "test_box_axis_order_is_not_swapped",
    "object_area_fraction": "test_uniform_energy_inside_a_box_is_its_area_fraction",
    "pointing_hit": "test_pointing_game_with_tolerance",
    "cam_box_x0": "test_cam_box_picks_the_largest_component",
    "cam_box_y0": "test_cam_box_picks_the_largest_component",
    "cam_box_x1": "test_cam_box_picks_the_largest_component",
    "cam_box_y1": "test_cam_box_picks_the_largest_component",
    "cam_box_iou": "test_cam_box_iou_against_object_boxes_and_mask",
    "raw_max": "test_engine_keys_are_documented_not_computed",
    "raw_sum": "test_engine_keys_are_documented_not_computed",
    "target_logit": "test_engine_keys_are_documented_not_computed",
    "confidence": "test_engine_keys_are_documented_not_computed",
}


def test_every_statistic_has_a_test() -> None:
    assert set(KEY_TESTS) == set(STATISTICS)
    assert list(HEATMAP_KEYS) == [k for k in STATISTICS if STATISTICS[k].source == "heatmap"]
    module = sys.modules[__name__]
    for key, name in KEY_TESTS.items():
        assert callable(getattr(module, name, None)), f"{key}: no test named {name}"


def test_registry_entries_are_complete_and_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for key, definition in STATISTICS.items():
        assert definition.key == key
        assert definition.label and definition.unit and definition.formula and definition.description
        assert f"`{key}`" in text, f"{key} is missing from {DOCS}"
    region_keys = {k for k, d in STATISTICS.items() if d.needs_region}
    assert region_keys == {"energy_outside", "object_area_fraction", "pointing_hit", "cam_box_iou"}
