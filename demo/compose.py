"""Render one synthetic frame from a :class:`FrameRecipe`: background, soft-edged object, overlays, lighting.

Rendering is a pure function of the recipe (all randomness is drawn beforehand, in :mod:`demo.timeline`),
so the manifest can be written without rendering and frames can be rendered in any order or process.

Pixels stay 8-bit (Pillow operations, each rounding to integers), in this order:

1. background: a window of a background photo resized (bilinear) to the canvas, optionally mirrored;
   grey textures get a per-channel ``tint``: ``v -> clip(round(v * tint_c), 0, 255)``;
2. object: the object crop resized to its box, optionally mirrored, pasted through a soft alpha
   ``a(x, y) = s(x) * s(y)`` (``s`` rises as a smoothstep over ``feather`` pixels from each edge);
3. planted overlay (if any): a crop pasted opaquely into ``overlay_box`` (through its alpha channel if
   the photo has one);
4. lighting and camera jitter: every channel multiplied by ``gains_c * lighting_c`` (``lighting`` is the
   global change: darker with a warm cast; ``gains`` is brightness times a small colour balance);
5. JPEG at ``quality`` (:func:`encode_jpeg`), with the camera's EXIF ``Make`` and ``Model`` when it has them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from demo.sources import BackgroundSource, CropBox, ObjectSource, image

Gains = tuple[float, float, float]


@dataclass(frozen=True)
class Overlay:
    """A planted overlay: a crop of a photo pasted opaquely (through the photo's alpha if it has one)."""

    kind: str
    photo: str
    box: CropBox


@dataclass(frozen=True)
class FrameRecipe:
    """Everything needed to render one frame; boxes are ``(x0, y0, x1, y1)`` canvas pixels, half-open."""

    width: int
    height: int
    background: BackgroundSource
    background_window: CropBox
    background_flip: bool
    tint: Gains
    obj: ObjectSource
    object_box: CropBox
    object_flip: bool
    feather: int
    overlay: Overlay | None
    overlay_box: CropBox | None
    lighting: Gains | None
    gains: Gains
    quality: int
    camera: tuple[str, str] = ("", "")  # EXIF (Make, Model); empty strings: not written


def _lut(gains: Gains) -> list[int]:
    """Pillow ``point`` table for an RGB image: ``v -> clip(round(v * gain_channel), 0, 255)``."""
    ramp = np.arange(256, dtype=np.float64)
    return np.concatenate([np.clip(np.rint(ramp * g), 0, 255) for g in gains]).astype(int).tolist()


def soft_alpha(width: int, height: int, feather: int) -> np.ndarray:
    """Alpha of shape ``(height, width)``: ``s(x) * s(y)`` with a smoothstep ramp ``3t^2 - 2t^3``.

    ``t = min(d + 0.5, feather) / feather`` where ``d`` is a pixel centre's distance in pixels to the
    nearest edge along that axis, so every pixel of the box has alpha > 0 and the inside is opaque.
    """

    def ramp(n: int) -> np.ndarray:
        d = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float32) + 0.5
        t = np.clip(d / max(feather, 1), 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)

    return np.outer(ramp(height), ramp(width))


def render(recipe: FrameRecipe) -> Image.Image:
    """Render the frame as an RGB image of ``recipe.width x recipe.height`` (steps 1-5 above).

    Each step works on 8-bit pixels (Pillow), so intermediate values are rounded; the soft alpha is
    quantised with ``ceil(255 a)`` so that the whole object box stays (at least faintly) covered.
    """
    flip = Image.Transpose.FLIP_LEFT_RIGHT
    size = (recipe.width, recipe.height)
    canvas = image(recipe.background.photo).resize(size, Image.Resampling.BILINEAR,
                                                   box=_offset(recipe.background.box, recipe.background_window))
    if recipe.background_flip:
        canvas = canvas.transpose(flip)
    if recipe.background.tinted:
        canvas = canvas.point(_lut(recipe.tint))

    x0, y0, x1, y1 = recipe.object_box
    obj = image(recipe.obj.photo).resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR, box=recipe.obj.box)
    if recipe.object_flip:
        obj = obj.transpose(flip)
    alpha = np.ceil(soft_alpha(x1 - x0, y1 - y0, recipe.feather) * 255.0).astype(np.uint8)
    canvas.paste(obj, (x0, y0), Image.fromarray(alpha))

    if recipe.overlay is not None:
        if recipe.overlay_box is None:
            raise ValueError("a recipe with an overlay needs an overlay_box")
        ox0, oy0, ox1, oy1 = recipe.overlay_box
        sticker = image(recipe.overlay.photo).resize((ox1 - ox0, oy1 - oy0), Image.Resampling.BILINEAR,
                                                      box=recipe.overlay.box)
        mask = sticker.getchannel("A") if sticker.mode == "RGBA" else None
        canvas.paste(sticker.convert("RGB"), (ox0, oy0), mask)

    gains = recipe.gains
    if recipe.lighting is not None:
        gains = tuple(g * light for g, light in zip(gains, recipe.lighting, strict=True))  # type: ignore[assignment]
    return canvas.point(_lut(gains))


def _offset(box: CropBox, window: CropBox) -> CropBox:
    """``window`` (relative to the crop ``box``) in the coordinates of the whole photo."""
    return (box[0] + window[0], box[1] + window[1], box[0] + window[2], box[1] + window[3])


def encode_jpeg(frame: Image.Image, quality: int, camera: tuple[str, str] = ("", "")) -> bytes:
    """Baseline JPEG bytes of an RGB image (deterministic for a given Pillow/libjpeg), with EXIF ``Make``
    (0x010F) and ``Model`` (0x0110) from ``camera`` when they are not empty."""
    exif = Image.Exif()
    for tag, value in zip((0x010F, 0x0110), camera, strict=True):
        if value:
            exif[tag] = value
    buffer = io.BytesIO()
    frame.save(buffer, format="JPEG", quality=quality, optimize=False, exif=exif.tobytes() if len(exif) else b"")
    return buffer.getvalue()
