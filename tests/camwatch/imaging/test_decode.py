"""Tests for camwatch.imaging.decode: every bad input kind, every Pillow mode, EXIF orientation, draft decoding."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile, ImageOps
from skimage import data

from camwatch.imaging.decode import (
    DEFAULT_BACKGROUND,
    ImageDecodeError,
    load_image,
    load_mask,
    make_thumbnail,
    orient_box,
    orient_mask,
    orient_region,
)
from camwatch.regions import ObjectRegion


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    return data.chelsea()  # 300 x 451 x 3 photo


def _save(tmp_path: Path, name: str, image: Image.Image, **params: Any) -> Path:
    path = tmp_path / name
    image.save(path, **params)
    return path


def _decode_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ImageDecodeError) as info:
        load_image(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    return info.value.reason


# ---------------------------------------------------------------- bad inputs


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    assert _decode_error(path) == "empty file (0 bytes)"


def test_truncated_jpeg_cut_in_half(tmp_path: Path, chelsea: np.ndarray) -> None:
    full = _save(tmp_path, "full.jpg", Image.fromarray(chelsea), quality=90).read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(full[: len(full) // 2])
    assert _decode_error(path) == "truncated image data"
    assert _decode_error(path, draft_size=None) == "truncated image data"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png(tmp_path: Path, chelsea: np.ndarray) -> None:
    full = _save(tmp_path, "full.png", Image.fromarray(chelsea)).read_bytes()
    path = tmp_path / "half.png"
    path.write_bytes(full[: len(full) // 2])
    assert _decode_error(path) == "truncated image data"


def test_corrupt_scan_data(tmp_path: Path, chelsea: np.ndarray) -> None:
    raw = bytearray(_save(tmp_path, "ok.jpg", Image.fromarray(chelsea), quality=90).read_bytes())
    for i in range(2000, 3000):
        raw[i] = 0xFF if i % 7 == 0 else (i * 13) % 256
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(raw))
    assert _decode_error(path, draft_size=None).startswith("corrupt image data (")


def test_corrupt_header_with_jpeg_magic(tmp_path: Path) -> None:
    path = tmp_path / "header.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    assert _decode_error(path) == "corrupt JPEG data (header not recognised)"


@pytest.mark.parametrize(("content", "detected"), [
    (b"hello, this is a text file and not a photo\n", "text"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
    (bytes([0, 1, 2, 3, 250, 251, 252, 253]) * 8, "unknown"),
])
def test_not_an_image(tmp_path: Path, content: bytes, detected: str) -> None:
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    assert _decode_error(path) == f"not an allowed image format (detected: {detected})"


@pytest.mark.parametrize(("suffix", "detected"), [(".ico", "ICO"), (".eps", "PostScript/EPS"), (".tga", "unknown")])
def test_format_outside_allowlist(tmp_path: Path, suffix: str, detected: str) -> None:
    path = _save(tmp_path, "img" + suffix, Image.new("RGB", (16, 16), (200, 10, 10)))
    assert Image.open(path).format in {"ICO", "EPS", "TGA"}  # Pillow itself could read it
    assert _decode_error(path) == f"not an allowed image format (detected: {detected})"


def test_decompression_bomb_with_configured_limit(tmp_path: Path) -> None:
    path = _save(tmp_path, "bomb.png", Image.new("1", (3000, 2000)))
    assert path.stat().st_size < 10_000
    filters_before = list(warnings.filters)
    reason = _decode_error(path, max_pixels=1_000_000)
    assert reason == "image has 6000000 pixels, above the limit 1000000 (possible decompression bomb)"
    assert warnings.filters == filters_before
    assert load_image(path, max_pixels=6_000_000).width == 3000  # at the limit: accepted


def test_pillow_bomb_warning_becomes_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    path = _save(tmp_path, "bomb.png", Image.new("1", (1500, 1000)))  # between 1x and 2x: Pillow only warns
    filters_before = list(warnings.filters)
    assert _decode_error(path) == "image has 1500000 pixels, above the limit 1000000 (possible decompression bomb)"
    assert warnings.filters == filters_before
    big = _save(tmp_path, "bigger.png", Image.new("1", (2500, 1000)))  # above 2x: Pillow's own error
    assert _decode_error(big) == "image has 2500000 pixels, above the limit 1000000 (possible decompression bomb)"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _decode_error(tmp_path / "nope.jpg") == "file not found"
    assert _decode_error(tmp_path) == "is a directory, not a file"


def test_refuses_load_truncated_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(tmp_path, "ok.png", Image.new("RGB", (8, 8)))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        load_image(path)


# ---------------------------------------------------------------- modes


def _pixel(path: Path, xy: tuple[int, int] = (0, 0), **kwargs: object) -> tuple[int, int, int]:
    decoded = load_image(path, **kwargs)  # type: ignore[arg-type]
    assert decoded.image.mode == "RGB"
    return decoded.image.getpixel(xy)  # type: ignore[return-value]


def test_mode_l_and_1(tmp_path: Path) -> None:
    assert _pixel(_save(tmp_path, "l.png", Image.new("L", (4, 4), 77))) == (77, 77, 77)
    one = Image.new("1", (4, 4), 0)
    one.putpixel((1, 0), 1)
    path = _save(tmp_path, "one.png", one)
    assert _pixel(path, (0, 0)) == (0, 0, 0) and _pixel(path, (1, 0)) == (255, 255, 255)


def test_alpha_composited_on_background(tmp_path: Path) -> None:
    la = Image.new("LA", (4, 1), (200, 0))
    la.putpixel((1, 0), (200, 255))
    path = _save(tmp_path, "la.png", la)
    assert _pixel(path, (0, 0)) == DEFAULT_BACKGROUND == (128, 128, 128)
    assert _pixel(path, (1, 0)) == (200, 200, 200)
    assert _pixel(path, (0, 0), background=(255, 255, 255)) == (255, 255, 255)
    rgba = _save(tmp_path, "rgba.png", Image.new("RGBA", (2, 2), (228, 28, 128, 128)))
    expected = np.round(np.array([228, 28, 128]) * 128 / 255 + 128 * 127 / 255)
    assert np.abs(np.array(_pixel(rgba)) - expected).max() <= 1


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 0), 1)
    plain = _save(tmp_path, "p.png", pal)
    assert _pixel(plain, (0, 0)) == (255, 0, 0) and _pixel(plain, (1, 0)) == (0, 0, 255)
    transparent = _save(tmp_path, "pt.png", pal, transparency=0)
    assert _pixel(transparent, (0, 0)) == (128, 128, 128) and _pixel(transparent, (1, 0)) == (0, 0, 255)
    gif = _save(tmp_path, "pt.gif", pal, transparency=0)
    assert _pixel(gif, (0, 0)) == (128, 128, 128)


def test_cmyk(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (255, 0, 0, 0))
    path = _save(tmp_path, "cmyk.tif", cmyk)
    assert _pixel(path, (0, 0)) == (255, 255, 255) and _pixel(path, (1, 0)) == (0, 255, 255)


def test_sixteen_bit_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = _save(tmp_path, "i16.png", Image.fromarray(values))
    assert Image.open(path).mode == "I;16"
    assert Image.open(path).convert("RGB").getpixel((2, 0)) == (255, 255, 255)  # Pillow's own clipping
    row = np.asarray(load_image(path).image)[0, :, 0]
    assert row.tolist() == [0, 1, 128, 255]


def test_int32_and_float_modes(tmp_path: Path) -> None:
    ints = _save(tmp_path, "i.tif", Image.fromarray(np.array([[-5, 32896, 70000]], dtype=np.int32)))
    assert np.asarray(load_image(ints).image)[0, :, 0].tolist() == [0, 128, 255]
    floats = _save(tmp_path, "f.tif", Image.fromarray(np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)))
    assert np.asarray(load_image(floats).image)[0, :, 0].tolist() == [0, 128, 255]


def test_multi_frame_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    decoded = load_image(path)
    assert decoded.frames == 3 and decoded.format == "GIF"
    assert decoded.image.getpixel((4, 4)) == (255, 0, 0)


def test_multi_page_tiff_gives_first_page(tmp_path: Path) -> None:
    pages = [Image.new("L", (8, 8), 10), Image.new("L", (8, 8), 240)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    decoded = load_image(path)
    assert decoded.frames == 2 and decoded.image.getpixel((0, 0)) == (10, 10, 10)


# ---------------------------------------------------------------- orientation


def _marker_image() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 60 x 40 (W x H) grey image with a red block at columns 0..20, rows 0..10."""
    pixels = np.full((40, 60, 3), 90, dtype=np.uint8)
    pixels[0:10, 0:20] = (255, 0, 0)
    return pixels, (0.0, 0.0, 20.0, 10.0)


def _with_orientation(tmp_path: Path, pixels: np.ndarray, orientation: int, fmt: str = "PNG") -> Path:
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[ExifTags.Base.Orientation] = orientation
    return _save(tmp_path, f"o{orientation}.{fmt.lower()}", image, format=fmt, exif=exif)


@pytest.mark.parametrize(("orientation", "display"), [(3, 2), (6, -1), (8, 1)])  # np.rot90 k (counter-clockwise)
def test_exif_orientation_pixels_and_sizes(tmp_path: Path, orientation: int, display: int) -> None:
    pixels, box = _marker_image()
    decoded = load_image(_with_orientation(tmp_path, pixels, orientation))
    expected = np.rot90(pixels, k=display)  # EXIF: 3 = rotate 180, 6 = 90 clockwise, 8 = 90 counter-clockwise
    assert np.array_equal(np.asarray(decoded.image), expected)
    assert decoded.orientation == orientation
    assert (decoded.raw_width, decoded.raw_height) == (60, 40)
    swapped = orientation != 3
    assert (decoded.width, decoded.height) == ((40, 60) if swapped else (60, 40))
    assert decoded.image.size == (decoded.width, decoded.height)
    red = np.argwhere(np.all(np.asarray(decoded.image) == (255, 0, 0), axis=-1))
    x0, y0, x1, y1 = orient_box(box, orientation, 60, 40)
    assert (x0, y0, x1, y1) == (red[:, 1].min(), red[:, 0].min(), red[:, 1].max() + 1, red[:, 0].max() + 1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_and_box_mask_agree(tmp_path: Path, orientation: int) -> None:
    pixels, box = _marker_image()
    path = _with_orientation(tmp_path, pixels, orientation)
    with Image.open(path) as reference:
        assert np.array_equal(np.asarray(load_image(path).image), np.asarray(ImageOps.exif_transpose(reference)))
    raw_mask = np.zeros((40, 60), dtype=bool)
    raw_mask[0:10, 0:20] = True
    mask = orient_mask(raw_mask, orientation)
    decoded_red = np.all(np.asarray(load_image(path).image) == (255, 0, 0), axis=-1)
    assert np.array_equal(mask, decoded_red)
    rows, cols = np.nonzero(mask)
    assert orient_box(box, orientation, 60, 40) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    region = orient_region(ObjectRegion(boxes=(box,), mask=raw_mask, source="voc"), orientation, 60, 40)
    assert region.boxes == (orient_box(box, orientation, 60, 40),) and region.source == "voc"
    assert region.mask is not None and np.array_equal(region.mask, mask)


def test_orient_rejects_invalid_orientation() -> None:
    with pytest.raises(ValueError, match="1..8"):
        orient_box((0, 0, 1, 1), 9, 10, 10)


# ---------------------------------------------------------------- draft, EXIF time, thumbnail, mask


@pytest.mark.parametrize(("size", "draft_size", "decoded_size"), [
    ((1804, 1200), 224, (451, 300)),  # scale 1/4: 1/8 would give 150 < 224 rows
    ((1804, 1200), 128, (226, 150)),  # scale 1/8 (the largest libjpeg offers), ceil(1804 / 8) = 226
    ((900, 500), 224, (450, 250)),  # scale 1/2
    ((900, 500), 128, (450, 250)),  # 1/4 would give 125 < 128 rows
    ((300, 200), 224, (300, 200)),  # already below: decoded in full
])
def test_jpeg_draft_keeps_shorter_side_and_reports_original(
        tmp_path: Path, chelsea: np.ndarray, size: tuple[int, int], draft_size: int,
        decoded_size: tuple[int, int]) -> None:
    path = _save(tmp_path, "big.jpg", Image.fromarray(chelsea).resize(size), quality=90)
    decoded = load_image(path, draft_size=draft_size)
    assert decoded.image.size == decoded_size and min(decoded.image.size) >= min(draft_size, *size)
    assert (decoded.width, decoded.height) == size and decoded.format == "JPEG"
    assert load_image(path, draft_size=None).image.size == size


def test_draft_with_orientation(tmp_path: Path, chelsea: np.ndarray) -> None:
    pixels = np.asarray(Image.fromarray(chelsea).resize((1804, 1200)))
    decoded = load_image(_with_orientation(tmp_path, pixels, 6, fmt="JPEG"), draft_size=224)
    assert (decoded.width, decoded.height) == (1200, 1804)
    assert decoded.image.size == (300, 451)


def test_exif_capture_time(tmp_path: Path) -> None:
    image = Image.new("RGB", (8, 8))

    def save(name: str, stamp: str, offset: str | None = None) -> Path:
        exif = image.getexif()
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        exif_ifd[ExifTags.Base.DateTimeOriginal] = stamp
        if offset is not None:
            exif_ifd[ExifTags.Base.OffsetTimeOriginal] = offset
        return _save(tmp_path, name, image, exif=exif, format="JPEG")

    assert load_image(save("a.jpg", "2024:05:06 07:08:09")).captured_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    shifted = load_image(save("b.jpg", "2024:05:06 07:08:09", "+02:00")).captured_at
    assert shifted == datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)
    assert load_image(save("c.jpg", "0000:00:00 00:00:00")).captured_at is None
    assert load_image(_save(tmp_path, "d.jpg", image)).captured_at is None


def test_thumbnail(chelsea: np.ndarray) -> None:
    thumb = Image.open(io.BytesIO(make_thumbnail(Image.fromarray(chelsea), max_side=256)))
    assert thumb.format == "JPEG" and thumb.size == (256, 170)
    small = Image.open(io.BytesIO(make_thumbnail(Image.new("RGB", (40, 30)), max_side=256)))
    assert small.size == (40, 30)
    with pytest.raises(ValueError, match="quality"):
        make_thumbnail(Image.new("RGB", (4, 4)), quality=0)


def test_load_mask(tmp_path: Path) -> None:
    values = np.zeros((5, 7), dtype=np.uint8)
    values[1:3, 2:6] = 255
    mask = load_mask(_save(tmp_path, "m.png", Image.fromarray(values)))
    assert mask.dtype == bool and mask.shape == (5, 7) and mask.sum() == 8 and mask[1, 2]
    rgb = np.zeros((5, 7, 3), dtype=np.uint8)
    rgb[4, 6] = (0, 0, 1)
    assert load_mask(_save(tmp_path, "rgb.png", Image.fromarray(rgb))).sum() == 1
    with pytest.raises(ImageDecodeError, match="not an allowed image format"):
        load_mask(_save(tmp_path, "m.jpg", Image.fromarray(values)))
