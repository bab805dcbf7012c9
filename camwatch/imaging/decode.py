"""Image decoding that survives production folders: allowlisted formats, decompression-bomb limits,
truncated files, every Pillow mode, EXIF orientation and JPEG draft decoding.

Conventions
-----------
* ``width``/``height`` of a :class:`DecodedImage` are the *full-resolution* size after EXIF
  orientation; statistics are expressed in these pixels. ``raw_width``/``raw_height`` are the size as
  stored in the file, before orientation.
* Sidecar boxes and masks refer to the image **as stored** (raw pixels, the way annotation tools that
  ignore EXIF write them). :func:`orient_box` / :func:`orient_mask` / :func:`orient_region` map them to
  the oriented image.
* EXIF orientation ``o`` is applied as three steps, in this order (verified against
  ``ImageOps.exif_transpose`` for all eight values): transpose the axes (``o`` in 5..8), mirror the
  columns (``o`` in 2, 3, 6, 7), mirror the rows (``o`` in 3, 4, 7, 8).
* Transparent pixels are composited onto mid-grey ``(128, 128, 128)`` by default: after ImageNet
  normalisation (means 124, 116, 104 in 0..255) grey is close to a zero input, so the transparent area
  carries almost no signal. White or black would be a strong, high-contrast feature at the object's
  outline that attracts activation and biases the heatmap statistics.
* 16-bit data (``I;16*``, ``I``) maps ``v -> round(v / 257)`` so 65535 -> 255 (Pillow's own
  ``convert("RGB")`` clips everything above 255 to white); values outside 0..65535 are clipped.
  Floating-point data (``F``) is taken to lie in [0, 1]: ``round(255 * clip(v, 0, 1))``.
* ICC colour profiles are not applied (CMYK uses Pillow's plain conversion).
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from camwatch.imaging.properties import camera_model_name
from camwatch.regions import Box, ObjectRegion

logger = logging.getLogger(__name__)

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
DEFAULT_BACKGROUND: tuple[int, int, int] = (128, 128, 128)

# Errors Pillow raises on malformed data (its fuzzing harness allows this set).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# orientation -> (transpose axes, mirror columns, mirror rows), applied in that order.
_ORIENTATION_STEPS: dict[int, tuple[bool, bool, bool]] = {
    1: (False, False, False), 2: (False, True, False), 3: (False, True, True), 4: (False, False, True),
    5: (True, False, False), 6: (True, True, False), 7: (True, True, True), 8: (True, False, True),
}
# Magic numbers, only to name what a rejected file is.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"), (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"), (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"), (b"PK\x03\x04", "ZIP"), (b"\x1f\x8b", "GZIP"), (b"qoif", "QOI"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"BM", "BMP"),
)
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class ImageDecodeError(Exception):
    """An image that cannot be decoded; ``str()`` is one line: ``"<path>: <reason>"``."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(reason.split())
        super().__init__(f"{self.path}: {self.reason}")


@dataclass(frozen=True)
class DecodedImage:
    """A decoded, oriented RGB image. ``image`` may be smaller than ``width`` x ``height`` (JPEG draft
    decoding); ``width``/``height`` are the full-resolution oriented size, ``raw_*`` the stored size,
    ``orientation`` the EXIF tag (1..8), ``frames`` the file's frame count (``image`` is the first),
    ``camera_model`` the EXIF ``Make``/``Model`` (:func:`camwatch.imaging.properties.camera_model_name`)."""

    image: Image.Image
    width: int
    height: int
    raw_width: int
    raw_height: int
    format: str
    orientation: int
    captured_at: datetime | None
    frames: int
    warnings: tuple[str, ...] = ()
    camera_model: str | None = None


def load_image(path: Path, *, data: bytes | None = None, draft_size: int | None = 224,
               max_pixels: int | None = None,
               background: tuple[int, int, int] = DEFAULT_BACKGROUND) -> DecodedImage:
    """Decode ``path`` (or ``data``, the file's bytes already read, with ``path`` naming it in errors) to an
    oriented RGB image, or raise :class:`ImageDecodeError`.

    With ``draft_size``, JPEGs are decoded by libjpeg at 1/2, 1/4 or 1/8 scale, the largest
    reduction that keeps both sides >= ``draft_size`` (images already smaller are decoded in full).
    ``max_pixels`` (default ``Image.MAX_IMAGE_PIXELS``) bounds ``width * height``; Pillow's own hard
    limit of twice its global still applies. Multi-frame files (GIF, TIFF, MPO) give their first frame.
    """
    path = Path(path)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: truncated files would decode as "
                           "flat grey and corrupt the statistics; leave it False")
    with _open_checked(path, ALLOWED_FORMATS, max_pixels, data) as img:
        raw_width, raw_height = img.size
        fmt = img.format or "unknown"
        frames = int(getattr(img, "n_frames", 1))
        if draft_size is not None and fmt in ("JPEG", "MPO"):
            img.draft("RGB", (draft_size, draft_size))  # before anything that calls load()
        img.load()
        orientation, captured_at, camera_model, notes = _read_exif(img)  # after load(): PNG keeps eXIf late
        rgb = _to_rgb(img, background, path)
    swap = _ORIENTATION_STEPS[orientation][0]
    return DecodedImage(
        image=_orient_image(rgb, orientation),
        width=raw_height if swap else raw_width, height=raw_width if swap else raw_height,
        raw_width=raw_width, raw_height=raw_height, format=fmt, orientation=orientation,
        captured_at=captured_at, frames=frames, warnings=notes, camera_model=camera_model,
    )


def load_mask(path: Path, *, data: bytes | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Read a PNG object mask as stored (no EXIF orientation): ``True`` where any channel is nonzero.

    For palette images the palette *index* is tested (index 0 is the background). ``data``: the file's
    bytes already read (``path`` then only names it).
    """
    path = Path(path)
    with _open_checked(path, ("PNG",), max_pixels, data) as img:
        values = np.asarray(img)
    return np.asarray(values.any(axis=-1) if values.ndim == 3 else values != 0, dtype=bool)


def orient_box(box: Box, orientation: int, raw_width: float, raw_height: float) -> Box:
    """Map a half-open box in stored-image pixels to the image after EXIF ``orientation``.

    Transposing maps ``(x, y) -> (y, x)``; mirroring the columns of an image ``W`` wide maps
    ``x -> W - x`` (so ``x0, x1`` swap roles); mirroring rows maps ``y -> H - y``.
    """
    transpose, mirror_x, mirror_y = _steps(orientation)
    x0, y0, x1, y1 = box
    width, height = raw_width, raw_height
    if transpose:
        x0, y0, x1, y1 = y0, x0, y1, x1
        width, height = height, width
    if mirror_x:
        x0, x1 = width - x1, width - x0
    if mirror_y:
        y0, y1 = height - y1, height - y0
    return (x0, y0, x1, y1)


def orient_mask(mask: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` to a ``(height, width)`` mask of the stored image (returns a copy)."""
    transpose, mirror_x, mirror_y = _steps(orientation)
    out = mask.T if transpose else mask
    if mirror_x:
        out = out[:, ::-1]
    if mirror_y:
        out = out[::-1, :]
    return np.ascontiguousarray(out)


def orient_region(region: ObjectRegion, orientation: int, raw_width: int, raw_height: int) -> ObjectRegion:
    """Apply :func:`orient_box` and :func:`orient_mask` to every part of ``region``."""
    if orientation == 1:
        return region
    return ObjectRegion(
        boxes=tuple(orient_box(b, orientation, raw_width, raw_height) for b in region.boxes),
        mask=None if region.mask is None else orient_mask(region.mask, orientation),
        source=region.source,
    )


def make_thumbnail(image: Image.Image, max_side: int = 256, quality: int = 80) -> bytes:
    """JPEG bytes of ``image`` shrunk (never enlarged) to fit ``max_side`` x ``max_side``.

    Meant for the decoded RGB image; another mode is converted with plain ``convert("RGB")``.
    """
    if max_side < 1 or not 1 <= quality <= 95:
        raise ValueError(f"max_side must be >= 1 and quality in 1..95, got {max_side} and {quality}")
    thumb = image.convert("RGB") if image.mode != "RGB" else image.copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@contextmanager
def _open_checked(path: Path, formats: tuple[str, ...], max_pixels: int | None,
                  data: bytes | None = None) -> Iterator[Image.Image]:
    """Open ``path`` (or the bytes ``data``) with Pillow restricted to ``formats``; decoding errors raised
    inside the ``with`` block are turned into :class:`ImageDecodeError` too.

    ``catch_warnings`` changes the process-wide filter list for the duration of the block and
    restores it afterwards (it is not thread-safe on Python 3.11; the worker decodes in one thread).
    """
    pillow_max = Image.MAX_IMAGE_PIXELS
    limit = max_pixels if max_pixels is not None else pillow_max
    if limit is not None and pillow_max is not None:
        limit = min(limit, 2 * pillow_max)  # Pillow raises DecompressionBombError there regardless
    bomb_action: Literal["error", "ignore"] = "error" if limit is not None and pillow_max is not None and limit <= pillow_max else "ignore"
    try:
        with (io.BytesIO(data) if data is not None else path.open("rb")) as fp:
            header = fp.read(16)
            if not header:
                raise ImageDecodeError(path, "empty file (0 bytes)")
            fp.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter(bomb_action, Image.DecompressionBombWarning)
                try:
                    with Image.open(fp, formats=list(formats)) as img:
                        pixels = img.size[0] * img.size[1]
                        if limit is not None and pixels > limit:
                            raise ImageDecodeError(path, _bomb_reason(pixels, limit))
                        yield img
                except UnidentifiedImageError:
                    detected = _sniff(header)
                    if detected in formats:
                        raise ImageDecodeError(path, f"corrupt {detected} data (header not recognised)") from None
                    raise ImageDecodeError(path, f"not an allowed image format (detected: {detected})") from None
                except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
                    match = _BOMB_PIXELS.search(str(exc))
                    reason = (_bomb_reason(int(match.group(1)), limit) if match and limit is not None
                              else f"possible decompression bomb ({exc})")
                    raise ImageDecodeError(path, reason) from exc
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found") from None
    except PermissionError:
        raise ImageDecodeError(path, "permission denied") from None
    except IsADirectoryError:
        raise ImageDecodeError(path, "is a directory, not a file") from None
    except _DECODE_ERRORS as exc:
        if isinstance(exc, OSError) and "truncated" in str(exc):
            raise ImageDecodeError(path, "truncated image data") from exc
        if isinstance(exc, OSError) and exc.errno is not None:  # an I/O error, not a decoder error
            raise ImageDecodeError(path, f"cannot read file ({exc.strerror})") from exc
        raise ImageDecodeError(path, f"corrupt image data ({type(exc).__name__}: {exc})") from exc


def _bomb_reason(pixels: int, limit: int) -> str:
    return f"image has {pixels} pixels, above the limit {limit} (possible decompression bomb)"


def _sniff(header: bytes) -> str:
    """Name the kind of file from its first bytes (for error messages only)."""
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WEBP"
    if header[4:8] == b"ftyp":
        return "HEIF/AVIF"
    for magic, name in _MAGIC:
        if header.startswith(magic):
            return name
    stripped = header.lstrip()
    if stripped.startswith((b"<svg", b"<?xml")):
        return "SVG/XML"
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    return "text" if all(c.isprintable() or c in "\t\r\n" for c in text) else "unknown"


def _read_exif(img: Image.Image) -> tuple[int, datetime | None, str | None, tuple[str, ...]]:
    """EXIF orientation (1 when absent or invalid), DateTimeOriginal as UTC, the camera model, and warnings
    about what was ignored (damaged EXIF, an invalid orientation, a time that cannot be read).

    DateTimeOriginal has no zone; OffsetTimeOriginal is applied when present, otherwise the time is
    taken as UTC. A damaged EXIF block is ignored with a warning: it must not reject the pixels.
    """
    try:
        exif = img.getexif()
        orientation = exif.get(ExifTags.Base.Orientation, 1)
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        stamp, offset = sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.OffsetTimeOriginal)
        camera = camera_model_name(exif.get(ExifTags.Base.Make), exif.get(ExifTags.Base.Model))
    except _DECODE_ERRORS as exc:
        return 1, None, None, (f"unreadable EXIF data ignored ({type(exc).__name__})",)
    notes: list[str] = []
    if orientation not in _ORIENTATION_STEPS:
        notes.append("invalid EXIF orientation ignored (using 1)")
        orientation = 1
    moment, note = parse_exif_time(stamp, offset)
    if note:
        notes.append(note)
    return int(orientation), moment, camera, tuple(notes)


def parse_exif_time(stamp: object, offset: object) -> tuple[datetime | None, str | None]:
    """``(UTC time, None)`` from EXIF ``DateTimeOriginal`` and ``OffsetTimeOriginal``, or ``(None, reason)``
    when there is a stamp that cannot be used (``(None, None)`` without a stamp). A zoned time that falls
    outside the years 1..9999 once converted to UTC (a camera whose clock reset to 0001:01:01 with a
    positive offset) is unusable, not an error."""
    if isinstance(stamp, bytes):
        stamp = stamp.decode("ascii", "replace")
    if not isinstance(stamp, str):
        return None, None
    try:
        moment = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, "EXIF DateTimeOriginal is not a 'YYYY:MM:DD HH:MM:SS' time: ignored"
    zone = UTC
    if isinstance(offset, bytes):
        offset = offset.decode("ascii", "replace")
    if isinstance(offset, str) and re.fullmatch(r"[+-]\d\d:\d\d", offset.strip("\x00 ")):
        text = offset.strip("\x00 ")
        sign = -1 if text[0] == "-" else 1
        hours, minutes = int(text[1:3]), int(text[4:6])
        if hours < 24 and minutes < 60:
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return moment.replace(tzinfo=zone).astimezone(UTC), None
    except (OverflowError, ValueError):
        return None, "EXIF DateTimeOriginal lies outside the representable years once converted to UTC: ignored"


def _to_rgb(img: Image.Image, background: tuple[int, int, int], path: Path) -> Image.Image:
    """Convert any Pillow mode to RGB (scaling and compositing conventions: module docstring)."""
    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(img, dtype=np.float64), 0.0, 65535.0) / 257.0
        return Image.fromarray(np.rint(values).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        values = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255.0
        return Image.fromarray(np.rint(values).astype(np.uint8), "L").convert("RGB")
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise ImageDecodeError(path, f"unsupported image mode {img.mode} ({exc})") from exc


def _steps(orientation: int) -> tuple[bool, bool, bool]:
    try:
        return _ORIENTATION_STEPS[orientation]
    except KeyError:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation!r}") from None


def _orient_image(img: Image.Image, orientation: int) -> Image.Image:
    transpose, mirror_x, mirror_y = _ORIENTATION_STEPS[orientation]
    if transpose:
        img = img.transpose(Image.Transpose.TRANSPOSE)
    if mirror_x:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if mirror_y:
        img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return img
