"""Object regions: where the object is in the original image.

Convention used everywhere in camwatch: a box is ``(x0, y0, x1, y1)`` in *original image pixel
coordinates*, ``x`` along columns (width) and ``y`` along rows (height), half-open, floats allowed.
A pixel with integer indices (row ``i``, column ``j``) covers ``[j, j+1) x [i, i+1)``.
A mask is a boolean array of shape ``(height, width)`` of the original image (row-major).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ObjectRegion:
    """The object's region in one image: boxes, a mask, or both (their union is the object).

    ``source`` says where the region came from (``"sidecar-json"``, ``"coco"``, ``"voc"``, ``"yolo"``,
    ``"mask"``, ``"roi"``, ``"cli"``...), so the product can show it.
    """

    boxes: tuple[Box, ...] = ()
    mask: np.ndarray | None = field(default=None, compare=False)
    source: str = "unknown"

    def __post_init__(self) -> None:
        for box in self.boxes:
            x0, y0, x1, y1 = box
            if not (x1 > x0 and y1 > y0):
                raise ValueError(f"box {box} is empty or its corners are swapped: expected (x0, y0, x1, y1) "
                                 "with x1 > x0 and y1 > y0")
        if self.mask is not None and self.mask.ndim != 2:
            raise ValueError(f"mask must be 2-D (height, width), got shape {self.mask.shape}")
        if not self.boxes and self.mask is None:
            raise ValueError("an ObjectRegion needs at least one box or a mask")

    def clipped_boxes(self, width: int, height: int) -> tuple[Box, ...]:
        """Boxes clipped to the image; boxes entirely outside are dropped."""
        out = []
        for x0, y0, x1, y1 in self.boxes:
            cx0, cy0 = max(0.0, float(x0)), max(0.0, float(y0))
            cx1, cy1 = min(float(width), float(x1)), min(float(height), float(y1))
            if cx1 > cx0 and cy1 > cy0:
                out.append((cx0, cy0, cx1, cy1))
        return tuple(out)

    def to_json(self) -> dict:
        """JSON-friendly description (the mask itself is not serialised, only its presence)."""
        return {"boxes": [list(b) for b in self.boxes], "has_mask": self.mask is not None, "source": self.source}


def parse_box(text: str) -> Box:
    """Parse ``"x0,y0,x1,y1"`` (pixels of the original image) into a box, with a clear error."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise ValueError(f"box {text!r}: expected four numbers x0,y0,x1,y1")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"box {text!r}: not a number ({exc})") from None
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"box {text!r}: expected x0 < x1 and y0 < y1 (x is the column, y the row)")
    return (x0, y0, x1, y1)
