"""Heatmap overlays: the heatmap over the image, the object box and the CAM box drawn.

Shared by the ``explain`` command and the dashboard. The heatmap is resampled with the same
definition as the statistics (:func:`camwatch.statistics.heatmap.resample_to_image`), normalised by its maximum and
coloured with matplotlib's ``turbo`` colormap; alpha grows with the heat so cold regions stay readable.

Boxes come from files and the database, so drawing never trusts them: corners are put in order, clamped to
the picture, and a box smaller than the line width is still drawn (at least one pixel); a box entirely
outside the picture, or with a coordinate that is not a finite number, is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from camwatch.statistics.heatmap import resample_to_image

OBJECT_COLOUR = (40, 220, 90)
CAM_BOX_COLOUR = (255, 255, 255)


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["turbo"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def heatmap_image(native: np.ndarray, extent: Sequence[float], width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    """The coloured heatmap at ``width x height`` and its normalised values (0..1) at the same size."""
    grid = resample_to_image(native, tuple(extent), width, height)  # type: ignore[arg-type]
    top = float(grid.max()) if grid.size else 0.0
    norm = np.clip(grid / top, 0, 1) if top > 0 else np.zeros_like(grid)
    small = Image.fromarray((norm * 255).astype(np.uint8), "L").resize((width, height), Image.Resampling.BILINEAR)
    values = np.asarray(small, dtype=np.float32) / 255.0
    return Image.fromarray(_lut()[np.asarray(small)], "RGB"), values


def overlay(image: Image.Image, native: np.ndarray | None, extent: Sequence[float] = (0, 0, 1, 1), *,
            object_boxes: Sequence[Sequence[float]] = (), cam_box: Sequence[float] | None = None,
            original_size: tuple[int, int] | None = None, max_alpha: float = 0.6) -> Image.Image:
    """Heatmap over ``image``; boxes are in original pixels (``original_size`` when ``image`` is a thumbnail)."""
    base = image.convert("RGB")
    width, height = base.size
    if native is not None and native.size and float(np.max(native)) > 0:
        colour, values = heatmap_image(native, extent, width, height)
        alpha = Image.fromarray((np.clip(values * 1.5, 0, 1) * max_alpha * 255).astype(np.uint8), "L")
        base = Image.composite(colour, base, alpha)
    ow, oh = original_size or (width, height)
    sx, sy = width / max(ow, 1), height / max(oh, 1)
    draw = ImageDraw.Draw(base)
    line = max(2, round(max(width, height) / 200))
    drawn: list[tuple[Sequence[float], tuple[int, int, int]]] = [(b, OBJECT_COLOUR) for b in object_boxes]
    if cam_box is not None:
        drawn.append((cam_box, CAM_BOX_COLOUR))
    for box, outline in drawn:
        rect = drawable_box(box, sx, sy, width, height)
        if rect is not None:
            draw.rectangle(rect, outline=outline, width=min(line, 1 + (rect[2] - rect[0]) // 2,
                                                           1 + (rect[3] - rect[1]) // 2))
    return base


def drawable_box(box: Sequence[float], sx: float, sy: float, width: int, height: int
                 ) -> tuple[int, int, int, int] | None:
    """Integer ``(x0, y0, x1, y1)`` with ``x0 <= x1``, ``y0 <= y1`` (inclusive, as Pillow draws) inside a
    ``width x height`` picture for a half-open box in original pixels scaled by ``(sx, sy)``; None when the
    box is not four finite numbers or lies outside the picture."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return None
    x0, x1 = sorted((x0 * sx, x1 * sx))
    y0, y1 = sorted((y0 * sy, y1 * sy))
    if x1 < 0 or y1 < 0 or x0 > width or y0 > height or width < 1 or height < 1:
        return None
    left, top = min(max(int(x0), 0), width - 1), min(max(int(y0), 0), height - 1)
    right = min(max(math.ceil(x1) - 1, left), width - 1)
    bottom = min(max(math.ceil(y1) - 1, top), height - 1)
    return left, top, right, bottom
