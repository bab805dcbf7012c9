"""Heatmap statistics on analytic maps (camwatch.statistics.heatmap, camwatch.statistics.grid, camwatch.statistics.region)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy import ndimage

from camwatch.regions import ObjectRegion
from camwatch.statistics.heatmap import (
    ENGINE_KEYS,
    HEATMAP_KEYS,
    STATISTICS,
    StatsConfig,
    compute_statistics,
    resample_to_image,
    working_grid_shape,
)
from tests.camwatch.imaging import test_properties
from tests.camwatch.statistics import test_region
from tests.support import REPO
from tests.support.maps import PH, PW, H, W, assert_clean, gaussian, hot_cell, stats_of

DOCS = REPO / "docs" / "metrics.md"

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
    "brightness": "test_brightness_is_the_bt601_luma_mean",
    "contrast": "test_rms_contrast_of_two_levels_is_half_their_difference",
    "sharpness": "test_sharpness_is_the_laplacian_variance",
    "colourfulness": "test_colourfulness_of_a_uniform_colour_and_of_grey",
    "width": "test_width_and_height_are_the_oriented_size",
    "height": "test_width_and_height_are_the_oriented_size",
}


def test_every_statistic_has_a_test() -> None:
    assert set(KEY_TESTS) == set(STATISTICS)
    assert list(HEATMAP_KEYS) == [k for k in STATISTICS if STATISTICS[k].source == "heatmap"]
    modules = (sys.modules[__name__], test_region, test_properties)
    for key, name in KEY_TESTS.items():
        assert any(callable(getattr(m, name, None)) for m in modules), f"{key}: no test named {name}"


def test_registry_entries_are_complete_and_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for key, definition in STATISTICS.items():
        assert definition.key == key
        assert definition.label and definition.unit and definition.formula and definition.description
        assert f"`{key}`" in text, f"{key} is missing from {DOCS}"
    region_keys = {k for k, d in STATISTICS.items() if d.needs_region}
    assert region_keys == {"energy_outside", "object_area_fraction", "pointing_hit", "cam_box_iou"}
