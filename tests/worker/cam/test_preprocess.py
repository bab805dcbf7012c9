"""Preprocessing modes map model-input pixels back to the original image exactly (the extent)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from worker.cam.preprocess import Preprocessing, resize_rgb


@pytest.mark.parametrize("mode", ["resize", "letterbox", "center_crop"])
@pytest.mark.parametrize("size", [(300, 200), (160, 360)])
def test_a_dot_maps_back_to_its_original_position(mode, size):
    width, height = size
    dot = (0.55 * width, 0.45 * height)  # inside the centre crop too
    arr = np.zeros((height, width, 3), np.uint8)
    arr[int(dot[1]) - 3:int(dot[1]) + 3, int(dot[0]) - 3:int(dot[0]) + 3] = 255
    pre = Preprocessing(size=(112, 112), mode=mode)
    out, (ex0, ey0, ex1, ey1) = pre.prepare(Image.fromarray(arr))
    ys, xs = np.nonzero(out[..., 0] > 200)
    u = ex0 + (xs.mean() + 0.5) / 112 * (ex1 - ex0)
    v = ey0 + (ys.mean() + 0.5) / 112 * (ey1 - ey0)
    assert u * width == pytest.approx(dot[0], abs=max(width, height) / 112 * 1.5)
    assert v * height == pytest.approx(dot[1], abs=max(width, height) / 112 * 1.5)


def test_extents_per_mode():
    assert Preprocessing(mode="resize").extent(640, 480) == (0, 0, 1, 1)
    ex = Preprocessing(size=(224, 224), mode="letterbox").extent(640, 480)
    assert ex[0] == 0 and ex[2] == 1 and ex[1] < 0 < 1 < ex[3]
    assert ex[3] - ex[1] == pytest.approx(640 / 480, rel=0.01)
    cx0, cy0, cx1, cy1 = Preprocessing(size=(224, 224), mode="center_crop").extent(640, 480)
    assert (cy1 - cy0) == pytest.approx(0.875) and (cx1 - cx0) * 640 == pytest.approx(0.875 * 480)


def test_normalisation_matches_the_formula():
    pre = Preprocessing(size=(8, 8), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = pre.to_tensor([np.full((8, 8, 3), 255, np.uint8), np.zeros((8, 8, 3), np.uint8)])
    assert float(x[0].min()) == 1.0 and float(x[1].max()) == -1.0


def test_fused_normalisation_equals_the_formula_with_imagenet_statistics():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (16, 12, 3), dtype=np.uint8) for _ in range(3)]
    pre = Preprocessing(size=(16, 12))
    x = pre.to_tensor(arrays).numpy()
    mean, std = np.array(pre.mean)[:, None, None], np.array(pre.std)[:, None, None]
    expected = np.stack([(a.transpose(2, 0, 1) / 255.0 - mean) / std for a in arrays])
    assert x.shape == (3, 3, 16, 12) and x.dtype == np.float32
    assert np.abs(x - expected).max() < 1e-5


@pytest.mark.parametrize("size", [(224, 224), (300, 100)])
def test_resize_matches_pillow_within_one_grey_level_on_a_photo(photos, size):
    photo = photos["astronaut"]  # 512 x 512: downsampling with antialiasing
    ours = resize_rgb(np.asarray(photo), *size)
    pillow = np.asarray(photo.resize(size, Image.Resampling.BILINEAR))
    assert ours.shape == pillow.shape == (size[1], size[0], 3)
    diff = np.abs(ours.astype(int) - pillow.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_letterbox_pads_with_the_mean_colour_around_the_resized_photo(photos):
    photo = photos["chelsea"]  # 451 x 300
    pre = Preprocessing(size=(224, 224), mode="letterbox")
    out, _ = pre.prepare(photo)
    new_w, new_h, off_x, off_y = pre._letterbox_geometry(*photo.size)
    assert (new_w, off_x) == (224, 0) and off_y > 0
    assert (out[:off_y] == [round(m * 255) for m in pre.mean]).all()
    inner = np.asarray(photo.resize((new_w, new_h), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(out[off_y:off_y + new_h].astype(int) - inner).max() <= 1


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        Preprocessing(mode="squash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="std > 0"):
        Preprocessing(std=(0, 1, 1))
