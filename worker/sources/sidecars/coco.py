"""``coco``: COCO detection files (``annotations.json``, ``_annotations.coco.json``, ``instances*.json`` by
default) in the image's folder, then the source root. Images are matched by ``file_name`` relative to the
COCO file's folder, then to the source root, then by base name when that is unambiguous;
``bbox = [x, y, w, h]`` → ``(x, y, x + w, y + h)``. Parsed files are cached by (path, mtime, size); the
label is the category of the largest box."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from camwatch.regions import Box
from worker.sources.sidecars.base import (
    Annotations,
    ImageContext,
    Malformed,
    SidecarFormat,
    cached,
    matches_any,
    number,
    parse_json,
    read_text,
    region_of,
    register,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CocoIndex:
    annotations: dict[str, tuple[tuple[Box, str | None], ...]]  # normalised file_name -> boxes, labels
    by_base: dict[str, tuple[str, ...]]  # base name -> file_names


def _normalise(file_name: str) -> str:
    name = str(file_name).replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _list(doc: dict, key: str, *, required: bool) -> list:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise Malformed(f'not a COCO detection file: "{key}" must be a list')
    return value


def parse_coco(path: Path, limit: int, root: Path) -> CocoIndex:
    doc = parse_json(read_text(path, limit, root))
    if not isinstance(doc, dict):
        raise Malformed("not a COCO detection file: expected a JSON object")
    categories: dict[object, str] = {}
    for n, c in enumerate(_list(doc, "categories", required=False), start=1):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str | int):
            raise Malformed(f"not a COCO detection file: category {n} needs an id and a name")
        if isinstance(c["id"], dict | list):
            raise Malformed(f"not a COCO detection file: category {n}: the id must be a number or a string")
        categories[c["id"]] = str(c["name"])
    names: dict[object, str] = {}
    for n, img in enumerate(_list(doc, "images", required=True), start=1):
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str) or "id" not in img:
            raise Malformed(f"not a COCO detection file: image {n} needs an id and a file_name string")
        if isinstance(img["id"], dict | list):
            raise Malformed(f"not a COCO detection file: image {n}: the id must be a number or a string")
        names[img["id"]] = _normalise(img["file_name"])
    boxes: dict[str, list[tuple[Box, str | None]]] = {name: [] for name in names.values()}
    skipped = 0
    for n, ann in enumerate(_list(doc, "annotations", required=False), start=1):
        if not isinstance(ann, dict) or not isinstance(ann.get("bbox"), list) or len(ann["bbox"]) != 4:
            raise Malformed(f"not a COCO detection file: annotation {n} needs a bbox [x, y, w, h]")
        image_id = ann.get("image_id")
        if isinstance(image_id, dict | list) or image_id not in names:
            raise Malformed(f"not a COCO detection file: annotation {n} names an image id that is not in \"images\"")
        x, y, w, h = (number(v, f"annotation {n} bbox") for v in ann["bbox"])
        if w <= 0 or h <= 0:
            skipped += 1
            continue
        category = ann.get("category_id")
        label = categories.get(category) if not isinstance(category, dict | list) else None
        boxes[names[image_id]].append(((x, y, x + w, y + h), label))
    if skipped:
        logger.info("%s: skipped %d annotations with an empty bbox", path, skipped)
    by_base: dict[str, list[str]] = {}
    for name in boxes:
        by_base.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    return CocoIndex(annotations={k: tuple(v) for k, v in boxes.items()},
                     by_base={k: tuple(v) for k, v in by_base.items()})


@lru_cache(maxsize=256)
def _list_matching(folder: str, mtime_ns: int, patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Names in ``folder`` matching ``patterns``; cached per folder mtime (a new file changes it),
    so a folder of 10,000 images is listed once per change, not once per image. On file systems with
    coarse timestamps a COCO file added in the same clock tick is seen after the folder's next change."""
    with os.scandir(folder) as entries:
        return tuple(sorted(e.name for e in entries if matches_any(e.name, patterns) and e.is_file()))


@register
class CocoSidecar(SidecarFormat):
    key = "coco"
    description = "COCO detection JSON in the image's folder or the source root"
    suffixes = (".json",)

    def candidates(self, image: ImageContext) -> Sequence[Path]:
        """COCO files in the image's folder, then the source root; names sorted within a folder."""
        out: list[Path] = []
        for folder in image.folders:
            try:
                mtime_ns = folder.stat().st_mtime_ns
            except OSError as exc:
                logger.warning("%s: cannot list folder for COCO files (%s)", folder, exc.strerror)
                continue
            out.extend(folder / name
                       for name in _list_matching(str(folder), mtime_ns, tuple(image.config.coco_files)))
        return out

    def read(self, path: Path, image: ImageContext) -> Annotations | None:
        """The image's boxes, or ``None`` when this COCO file does not list the image."""
        index: CocoIndex = cached(parse_coco, path, image.config.max_coco_bytes, image.source_root)
        for name in (image.path.relative_to(path.parent).as_posix(), image.relative.as_posix()):
            if name in index.annotations:
                return self._found(index.annotations[name], image)
        matches = index.by_base.get(image.path.name, ())
        if len(matches) > 1:
            raise Malformed(f"{len(matches)} images have this image's file name: cannot tell which one is meant")
        return self._found(index.annotations[matches[0]], image) if matches else None

    @staticmethod
    def _found(boxes: tuple[tuple[Box, str | None], ...], image: ImageContext) -> Annotations:
        region, label = region_of(list(boxes), "coco", image.config.max_boxes)
        return Annotations(region=region, label=label)
