"""Heatmap overlays: the heatmap over the image, the object box and the CAM box drawn.

Shared by the ``explain`` command and the dashboard. The heatmap is resampled with the same
definition as the statistics (:func:`camwatch.statistics.heatmap.resample_to_image`), normalised by its maximum and
coloured with matplotlib's ``turbo`` colormap; alpha grows with the heat so cold regions stay readable.
"""

from __future__ import annotations

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
    sx, sy = width / ow, height / oh
    draw = ImageDraw.Draw(base)
    line = max(2, round(max(width, height) / 200))
    for box in object_boxes:
        x0, y0, x1, y1 = box
        draw.rectangle([x0 * sx, y0 * sy, x1 * sx - 1, y1 * sy - 1], outline=OBJECT_COLOUR, width=line)
    if cam_box is not None:
        x0, y0, x1, y1 = cam_box
        draw.rectangle([x0 * sx, y0 * sy, x1 * sx - 1, y1 * sy - 1], outline=CAM_BOX_COLOUR, width=line)
    return base
