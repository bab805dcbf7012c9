"""``yolo``: ``STEM.txt`` with lines ``class cx cy w h`` (an optional sixth field, a detector's confidence,
is ignored) normalised to the image size ``(W, H)``; box = ``((cx - w/2) W, (cy - h/2) H, (cx + w/2) W,
(cy + h/2) H)``. Class names come from ``classes.txt`` / ``obj.names`` in the image's folder or the source
root; the label is the class of the largest box."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from camwatch.regions import Box
from worker.sources.sidecars.base import (
    Annotations,
    ImageContext,
    Malformed,
    SidecarFormat,
    cached,
    check_box_count,
    number,
    read_text,
    region_of,
    register,
)

_CLASS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is true, int("²") fails


def parse_class_names(path: Path, limit: int, root: Path) -> tuple[str, ...]:
    return tuple(line.strip() for line in read_text(path, limit, root).splitlines() if line.strip())


@register
class YoloSidecar(SidecarFormat):
    key = "yolo"
    description = "YOLO txt next to the image, class names from classes.txt / obj.names"
    suffixes = (".txt", ".names")

    def candidates(self, image: ImageContext) -> Sequence[Path]:
        return [image.folder / f"{image.stem}.txt"]

    def _class_names(self, image: ImageContext) -> tuple[str, ...]:
        for folder in image.folders:
            for name in image.config.class_files:
                path = folder / name
                if os.path.lexists(path):
                    try:
                        names = tuple(cached(parse_class_names, path, image.config.max_sidecar_bytes,
                                             image.source_root))
                    except Malformed as exc:
                        raise Malformed(f"class names {path}: {exc}") from None
                    if names:
                        return names
                    break  # an empty list in this folder: look in the next one
        return ()

    def read(self, path: Path, image: ImageContext) -> Annotations:
        width, height = image.width, image.height
        if width is None or height is None:
            raise Malformed("YOLO boxes are normalised: the image size is needed to read them")
        lines = [(n, line.split()) for n, line in
                 enumerate(read_text(path, image.config.max_sidecar_bytes, image.source_root).splitlines(), 1)]
        lines = [(n, fields) for n, fields in lines if fields]
        check_box_count(len(lines), image.config.max_boxes)
        names = self._class_names(image)
        boxes: list[tuple[Box, str | None]] = []
        for line_no, fields in lines:
            if len(fields) not in (5, 6):  # a sixth field is a detector's confidence
                raise Malformed(f"line {line_no}: expected 'class cx cy w h' (5 or 6 fields), got {len(fields)}")
            if not _CLASS.fullmatch(fields[0]):
                raise Malformed(f"line {line_no}: the class is not a non-negative integer")
            cls = int(fields[0])
            cx, cy, w, h = (number(v, f"line {line_no}") for v in fields[1:5])
            box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
            boxes.append((box, names[cls] if cls < len(names) else str(cls)))
        region, label = region_of(boxes, "yolo", image.config.max_boxes)
        return Annotations(region=region, label=label)
