"""``voc``: Pascal VOC ``STEM.xml``. VOC corners are 1-based and inclusive; the half-open 0-based box is
``(xmin - 1, ymin - 1, xmax, ymax)``. The label is the class of the largest box."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

from camwatch.regions import Box
from worker.sources.sidecars.base import (
    Annotations,
    ImageContext,
    Malformed,
    SidecarFormat,
    number,
    read_text,
    region_of,
    register,
)


@register
class VocSidecar(SidecarFormat):
    key = "voc"
    description = "Pascal VOC XML next to the image"
    suffixes = (".xml",)

    def candidates(self, image: ImageContext) -> Sequence[Path]:
        return [image.folder / f"{image.stem}.xml"]

    def read(self, path: Path, image: ImageContext) -> Annotations:
        try:
            root = ElementTree.fromstring(read_text(path, image.config.max_sidecar_bytes))
        except ElementTree.ParseError as exc:
            raise Malformed(f"invalid XML ({exc})") from None
        if root.tag != "annotation":
            raise Malformed(f"expected a Pascal VOC <annotation>, got <{root.tag}>")
        boxes: list[tuple[Box, str | None]] = []
        for obj in root.iter("object"):
            bndbox = obj.find("bndbox")
            if bndbox is None:
                raise Malformed("an <object> has no <bndbox>")
            x0, y0, x1, y1 = (number(bndbox.findtext(tag), f"<{tag}>") for tag in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append(((x0 - 1.0, y0 - 1.0, x1, y1), (obj.findtext("name") or "").strip() or None))
        region, label = region_of(boxes, "voc")
        return Annotations(region=region, label=label)
