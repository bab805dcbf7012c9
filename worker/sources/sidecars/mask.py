"""``mask``: ``STEM.mask.png`` next to the image; nonzero pixels are the object. Its size must be the
image's as stored (before EXIF orientation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from camwatch.imaging.decode import ImageDecodeError, load_mask
from camwatch.regions import ObjectRegion
from worker.sources.sidecars.base import (
    Annotations,
    ImageContext,
    Malformed,
    SidecarFormat,
    read_bytes,
    register,
)


@register
class MaskSidecar(SidecarFormat):
    key = "mask"
    description = "binary mask PNG next to the image (nonzero = object)"
    suffixes = (".mask.png",)

    def candidates(self, image: ImageContext) -> Sequence[Path]:
        return [image.folder / f"{image.stem}.mask.png"]

    def read(self, path: Path, image: ImageContext) -> Annotations:
        data = read_bytes(path, image.config.max_sidecar_bytes, image.source_root)
        try:
            mask = load_mask(path, data=data)
        except ImageDecodeError as exc:
            raise Malformed(exc.reason) from None
        if image.width is not None and image.height is not None and mask.shape != (image.height, image.width):
            raise Malformed(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {image.width}x{image.height} "
                            "(as stored)")
        if not mask.any():
            raise Malformed("mask has no nonzero pixel")
        return Annotations(region=ObjectRegion(mask=mask, source="mask"))
