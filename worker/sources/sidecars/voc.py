"""``voc``: Pascal VOC ``STEM.xml``. VOC corners are 1-based and inclusive; the half-open 0-based box is
``(xmin - 1, ymin - 1, xmax, ymax)``. The label is the class of the largest box.

Parsed with :mod:`defusedxml`: a document type declaration, entities (the "billion laughs" expansion) and
external references (XXE, which would read a file named by the XML) are refused as malformed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from camwatch.regions import Box
from worker.sources.sidecars.base import (
    Annotations,
    ImageContext,
    Malformed,
    SidecarFormat,
    check_box_count,
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
        text = read_text(path, image.config.max_sidecar_bytes, image.source_root)
        try:
            root = fromstring(text, forbid_dtd=True)
        except ParseError as exc:
            line, column = exc.position
            raise Malformed(f"invalid XML (line {line}, column {column})") from None
        except DefusedXmlException as exc:
            raise Malformed(f"unsafe XML refused ({type(exc).__name__}: DTDs, entities and external "
                            "references are not allowed)") from None
        except RecursionError:
            raise Malformed("invalid XML (nested too deeply)") from None
        if root.tag != "annotation":
            raise Malformed("expected a Pascal VOC <annotation> root element")
        objects = root.findall(".//object")
        check_box_count(len(objects), image.config.max_boxes)
        boxes: list[tuple[Box, str | None]] = []
        for index, obj in enumerate(objects, start=1):
            bndbox = obj.find("bndbox")
            if bndbox is None:
                raise Malformed(f"<object> {index} has no <bndbox>")
            x0, y0, x1, y1 = (number(bndbox.findtext(tag), f"<object> {index} <{tag}>")
                              for tag in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append(((x0 - 1.0, y0 - 1.0, x1, y1), (obj.findtext("name") or "").strip() or None))
        region, label = region_of(boxes, "voc", image.config.max_boxes)
        return Annotations(region=region, label=label)
