"""Image properties on analytic images: expected values computed by hand or with scipy, not by the code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from camwatch.imaging.decode import load_image
from camwatch.imaging.properties import (
    ANALYSIS_SIDE,
    analysis_image,
    camera_model_name,
    image_properties,
    properties_of_array,
)
from camwatch.statistics.registry import CATEGORIES, IMAGE_KEYS, IMAGE_PROPERTY_COLUMNS, STATISTICS


def _rgb(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB")


def _grey(array: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(array, dtype=np.float64)[..., None], 3, axis=2)


def test_a_constant_image_has_no_contrast_sharpness_or_colour() -> None:
    values = image_properties(Image.new("RGB", (200, 150), (90, 90, 90)))
    assert values["brightness"] == pytest.approx(90.0, rel=1e-6)  # float32
    for name in ("contrast", "sharpness", "colourfulness"):
        assert values[name] == pytest.approx(0.0, abs=1e-4), name


def test_brightening_by_a_known_factor_scales_the_properties() -> None:
    rng = np.random.default_rng(0)
    base = 2 * rng.integers(0, 128, size=(150, 200, 3))  # even values: halving them is exact in 8 bits
    full, half = image_properties(_rgb(base)), image_properties(_rgb(base // 2))
    assert half["brightness"] == pytest.approx(full["brightness"] / 2, rel=1e-6)
    assert half["contrast"] == pytest.approx(full["contrast"] / 2, rel=1e-6)
    assert half["colourfulness"] == pytest.approx(full["colourfulness"] / 2, rel=1e-6)
    assert half["sharpness"] == pytest.approx(full["sharpness"] / 4, rel=1e-6)


def test_brightness_is_the_bt601_luma_mean() -> None:
    pixels = np.zeros((10, 10, 3))
    pixels[:5] = (200, 100, 50)  # top half
    expected = 0.5 * (0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert properties_of_array(pixels)["brightness"] == pytest.approx(expected)


def test_rms_contrast_of_two_levels_is_half_their_difference() -> None:
    y = np.full((40, 40), 60.0)
    y[:, :20] = 180.0
    assert properties_of_array(_grey(y))["contrast"] == pytest.approx(60.0)


def test_sharpness_is_the_laplacian_variance() -> None:
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 255, size=(60, 80))
    laplace = ndimage.convolve(y, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float))[1:-1, 1:-1]
    assert properties_of_array(_grey(y))["sharpness"] == pytest.approx(laplace.var(), rel=1e-5)
    ramp = np.add.outer(np.arange(60.0), 2 * np.arange(80.0))  # a linear ramp has no curvature
    assert properties_of_array(_grey(ramp))["sharpness"] == pytest.approx(0.0, abs=1e-6)
    blurred = ndimage.gaussian_filter(y, 2.0)
    assert properties_of_array(_grey(blurred))["sharpness"] < properties_of_array(_grey(y))["sharpness"] / 50


def test_colourfulness_of_a_uniform_colour_and_of_grey() -> None:
    red = np.zeros((20, 20, 3))
    red[..., 0] = 255.0
    expected = 0.3 * np.hypot(255.0, 127.5)  # no spread; mean rg = 255, mean yb = 127.5
    assert properties_of_array(red)["colourfulness"] == pytest.approx(expected)
    noisy_grey = _grey(np.random.default_rng(2).uniform(0, 255, size=(30, 30)))
    assert properties_of_array(noisy_grey)["colourfulness"] == pytest.approx(0.0, abs=1e-4)


def test_the_analysis_image_is_an_integer_block_average() -> None:
    blocks = np.kron(np.arange(300).reshape(15, 20) % 251, np.ones((4, 4)))  # 60 x 80 image of 4x4 blocks
    big = np.kron(blocks, np.ones((5, 5)))  # 300 x 400: factor ceil(400 / 256) = 2
    small = analysis_image(_rgb(_grey(big)))
    assert small.shape == (150, 200, 3) and max(small.shape) <= ANALYSIS_SIDE
    np.testing.assert_array_equal(small[::10, ::10, 0], big[::20, ::20])
    assert analysis_image(_rgb(_grey(blocks))).shape == (60, 80, 3)  # small images are kept as they are
    with pytest.raises(ValueError, match="non-empty"):
        properties_of_array(np.zeros((0, 5, 3)))


def test_width_and_height_are_the_oriented_size(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: stored 64 x 48, shown 48 x 64
    Image.new("RGB", (64, 48), (10, 200, 30)).save(path, exif=exif)
    decoded = load_image(path)
    assert (decoded.width, decoded.height) == (48, 64)


def test_camera_model_comes_from_exif(tmp_path: Path) -> None:
    path = tmp_path / "cam.jpg"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "AXIS\x00", "  M3106-L   Mk II "
    Image.new("RGB", (32, 24)).save(path, exif=exif)
    assert load_image(path).camera_model == "AXIS M3106-L Mk II"
    Image.new("RGB", (32, 24)).save(tmp_path / "plain.jpg")
    assert load_image(tmp_path / "plain.jpg").camera_model is None


@pytest.mark.parametrize("make, model, expected", [
    ("Canon", "Canon EOS R5", "Canon EOS R5"),
    ("NIKON CORPORATION", "NIKON D850", "NIKON CORPORATION NIKON D850"),
    ("", "", None),
    (None, b"Pixel 8\x00", "Pixel 8"),
    ("Hikvision", None, "Hikvision"),
    ("A\tB", "x" * 300, "A B " + "x" * (CATEGORIES["camera_model"].max_length - 4)),
])
def test_camera_model_name(make: object, model: object, expected: str | None) -> None:
    assert camera_model_name(make, model) == expected


def test_every_image_property_is_registered_and_tested() -> None:
    assert set(IMAGE_KEYS) == {"brightness", "contrast", "sharpness", "colourfulness", "width", "height"}
    assert set(IMAGE_PROPERTY_COLUMNS) == set(image_properties(Image.new("RGB", (4, 4))))
    assert all(STATISTICS[k].source == "image" for k in IMAGE_KEYS)
