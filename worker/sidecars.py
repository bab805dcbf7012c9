"""Where the object is, its label, tags and capture time, read from files next to an image.

Region sources, first match wins:

1. ``IMAGE.json`` (full file name, e.g. ``a.jpg.json``), else ``STEM.json`` (``a.json``): camwatch's own
   format ``{"boxes": [[x0, y0, x1, y1], ...], "label": str, "tags": {str: str}, "captured_at": ISO}``.
2. ``STEM.mask.png``: nonzero pixels are the object.
3. ``STEM.xml``, Pascal VOC. VOC corners are 1-based and inclusive; the half-open 0-based box is
   ``(xmin - 1, ymin - 1, xmax, ymax)``.
4. ``STEM.txt``, YOLO: ``class cx cy w h`` normalised to the image size ``(W, H)``;
   box = ``((cx - w/2) W, (cy - h/2) H, (cx + w/2) W, (cy + h/2) H)``. Class names come from
   ``classes.txt`` / ``obj.names`` in the image's folder or the source root.
5. COCO files (``annotations.json``, ``_annotations.coco.json``, ``instances*.json`` by default) in the
   image's folder, then the source root; images are matched by ``file_name`` relative to the COCO
   file's folder, then to the source root, then by base name when that is unambiguous;
   ``bbox = [x, y, w, h]`` -> ``(x, y, x + w, y + h)``. Parsed files are cached by (path, mtime, size).
6. ``AnnotationConfig.roi``: a fixed box per source name or glob on the relative path (fixed cameras).

Labels come from the first source above that names one (VOC, YOLO and COCO: the class of the largest
box). Tags: ``AnnotationConfig.path_tags`` names the leading folders of the relative path, and the JSON
sidecar's tags override them. ``captured_at`` comes from the JSON sidecar only; a time without a zone
is UTC.

All boxes and masks refer to the image **as stored** (before EXIF orientation; see
``worker.ingest.orient_region``). A malformed sidecar does not fail the image: it contributes
nothing, a warning names the file and the reason, and the region is ``None`` (not a lower-priority
source): we cannot tell which object the broken file meant, and measuring against another region
would silently mix two definitions of "the object" in the statistics.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from worker.ingest import ImageDecodeError, load_mask
from worker.regions import Box, ObjectRegion

logger = logging.getLogger(__name__)

_SIDECAR_SUFFIXES = frozenset({".json", ".xml", ".txt", ".names"})
_JSON_KEYS = frozenset({"boxes", "label", "tags", "captured_at"})


@dataclass
class AnnotationConfig:
    """Where to look for annotations. ``roi`` maps a source name or a glob on the image's path relative
    to the source root (``fnmatch``: ``*`` also crosses ``/``) to a box in stored-image pixels."""

    coco_files: list[str] = field(default_factory=lambda: ["annotations.json", "_annotations.coco.json",
                                                           "instances*.json"])
    class_files: list[str] = field(default_factory=lambda: ["classes.txt", "obj.names"])
    roi: dict[str, Box] = field(default_factory=dict)
    path_tags: list[str] = field(default_factory=list)
    max_sidecar_bytes: int = 16 << 20
    max_coco_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        for key, box in self.roi.items():
            try:
                ObjectRegion(boxes=(tuple(float(v) for v in box),), source="roi")  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"roi[{key!r}] = {box!r} is not a valid (x0, y0, x1, y1) box: {exc}") from None


@dataclass
class Annotations:
    region: ObjectRegion | None = None
    label: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    captured_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)


class _Malformed(Exception):
    """A sidecar that cannot be used; the message is the reason."""


@dataclass
class _Found:
    region: ObjectRegion | None = None
    label: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    captured_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _CocoIndex:
    annotations: dict[str, tuple[tuple[Box, str | None], ...]]  # normalised file_name -> boxes, labels
    by_base: dict[str, tuple[str, ...]]  # base name -> file_names


def is_sidecar_file(path: Path | str) -> bool:
    """True for names that are (or may be) annotation files: ``*.mask.png``, ``.json``, ``.xml``,
    ``.txt``, ``.names``. Decided on the name alone, without I/O."""
    name = os.path.basename(path).lower()
    return name.endswith(".mask.png") or os.path.splitext(name)[1] in _SIDECAR_SUFFIXES


def read_annotations(image_path: Path, *, source_root: Path, config: AnnotationConfig,
                     width: int | None = None, height: int | None = None,
                     source_name: str | None = None) -> Annotations:
    """Collect region, label, tags and capture time for ``image_path`` (order: module docstring).

    ``width``/``height`` are the stored (raw) image size, needed for YOLO boxes and to check masks.
    """
    image_path, source_root = Path(image_path), Path(source_root)
    try:
        relative = image_path.relative_to(source_root)
    except ValueError:
        raise ValueError(f"{image_path} is not inside the source root {source_root}") from None
    folder, stem = image_path.parent, image_path.stem
    json_path = image_path.with_name(image_path.name + ".json")
    if not json_path.is_file() and not _matches_any(stem + ".json", config.coco_files):
        json_path = folder / f"{stem}.json"
    mask_path, voc_path, yolo_path = (folder / (stem + suffix) for suffix in (".mask.png", ".xml", ".txt"))
    readers: list[tuple[Path, Callable[[], _Found]]] = [
        (json_path, partial(_read_json, json_path, config.max_sidecar_bytes)),
        (mask_path, partial(_read_mask, mask_path, width, height)),
        (voc_path, partial(_read_voc, voc_path, config.max_sidecar_bytes)),
        (yolo_path, partial(_read_yolo, yolo_path, width, height, (folder, source_root), config)),
    ]
    result = Annotations(tags=dict(zip(config.path_tags, relative.parts[:-1], strict=False)))
    found: list[_Found] = []
    broken = False
    for sidecar, read in readers:
        if not sidecar.is_file():
            continue
        try:
            found.append(read())
        except _Malformed as exc:
            result.warnings.append(f"{sidecar}: {exc}")
            broken = True
    for coco_path in _coco_files((folder, source_root), config.coco_files):
        try:
            index = _cached(_parse_coco, coco_path, config.max_coco_bytes)
            coco = _coco_lookup(index, [image_path.relative_to(coco_path.parent).as_posix(), relative.as_posix()],
                                image_path.name)
        except _Malformed as exc:
            result.warnings.append(f"{coco_path}: {exc}")
            broken = True
            continue
        if coco is not None:
            found.append(coco)
            break
    for item in found:
        result.warnings.extend(item.notes)
        result.region = result.region or item.region
        result.label = result.label or item.label
        result.tags.update(item.tags)
        result.captured_at = result.captured_at or item.captured_at
    if result.region is None:
        result.region = _roi(config, source_name, relative.as_posix())
    if broken:
        result.region = None
    return result


def _roi(config: AnnotationConfig, source_name: str | None, relative: str) -> ObjectRegion | None:
    for key, box in config.roi.items():
        if key == source_name or fnmatch.fnmatchcase(relative, key):
            return ObjectRegion(boxes=(tuple(float(v) for v in box),), source="roi")  # type: ignore[arg-type]
    return None


def _read_text(path: Path, limit: int) -> str:
    try:
        size = path.stat().st_size
        if size > limit:
            raise _Malformed(f"file is {size} bytes, above the limit of {limit}")
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _Malformed("not UTF-8 text") from None
    except OSError as exc:
        raise _Malformed(f"cannot read file ({exc.strerror or exc})") from None


def _region(boxes: list[tuple[Box, str | None]], source: str) -> tuple[ObjectRegion | None, str | None]:
    """Region of all boxes and the label of the largest one."""
    if not boxes:
        return None, None
    try:
        region = ObjectRegion(boxes=tuple(b for b, _ in boxes), source=source)
    except ValueError as exc:
        raise _Malformed(str(exc)) from None
    largest = max(boxes, key=lambda item: (item[0][2] - item[0][0]) * (item[0][3] - item[0][1]))
    return region, largest[1]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Malformed(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise _Malformed(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise _Malformed(f"{what} is not finite: {value!r}")
    return number


def _read_json(path: Path, limit: int) -> _Found:
    try:
        doc = json.loads(_read_text(path, limit))
    except json.JSONDecodeError as exc:
        raise _Malformed(f"invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _Malformed(f"expected a JSON object, got {type(doc).__name__}")
    found = _Found()
    unknown = sorted(set(doc) - _JSON_KEYS)
    if unknown:
        found.notes.append(f"{path}: ignored unknown keys {unknown} (known: {sorted(_JSON_KEYS)})")
    boxes = doc.get("boxes") or []
    if not isinstance(boxes, list) or not all(isinstance(b, list) and len(b) == 4 for b in boxes):
        raise _Malformed('"boxes" must be a list of [x0, y0, x1, y1] lists')
    parsed = [(tuple(_number(v, f"box {b}") for v in b), None) for b in boxes]
    found.region = _region(parsed, "sidecar-json")[0]  # type: ignore[arg-type]
    label = doc.get("label")
    if label is not None and not isinstance(label, str):
        raise _Malformed(f'"label" must be a string, got {label!r}')
    found.label = label
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str | int | float | bool) for v in tags.values()):
        raise _Malformed('"tags" must be an object of scalar values')
    found.tags = {str(k): str(v) for k, v in tags.items()}
    stamp = doc.get("captured_at")
    if stamp is not None:
        try:
            moment = datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            raise _Malformed(f'"captured_at" is not an ISO-8601 time: {stamp!r}') from None
        found.captured_at = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return found


def _read_mask(path: Path, width: int | None, height: int | None) -> _Found:
    try:
        mask = load_mask(path)
    except ImageDecodeError as exc:
        raise _Malformed(exc.reason) from None
    if width is not None and height is not None and mask.shape != (height, width):
        raise _Malformed(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height} (as stored)")
    if not mask.any():
        raise _Malformed("mask has no nonzero pixel")
    return _Found(region=ObjectRegion(mask=mask, source="mask"))


def _read_voc(path: Path, limit: int) -> _Found:
    try:
        root = ElementTree.fromstring(_read_text(path, limit))
    except ElementTree.ParseError as exc:
        raise _Malformed(f"invalid XML ({exc})") from None
    if root.tag != "annotation":
        raise _Malformed(f"expected a Pascal VOC <annotation>, got <{root.tag}>")
    boxes: list[tuple[Box, str | None]] = []
    for obj in root.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise _Malformed("an <object> has no <bndbox>")
        x0, y0, x1, y1 = (_number(bndbox.findtext(tag), f"<{tag}>") for tag in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(((x0 - 1.0, y0 - 1.0, x1, y1), (obj.findtext("name") or "").strip() or None))
    region, label = _region(boxes, "voc")
    return _Found(region=region, label=label)


def _read_yolo(path: Path, width: int | None, height: int | None, folders: tuple[Path, ...],
               config: AnnotationConfig) -> _Found:
    if width is None or height is None:
        raise _Malformed("YOLO boxes are normalised: the image size is needed to read them")
    names: tuple[str, ...] = ()
    for folder in dict.fromkeys(folders):
        for name in config.class_files:
            if (folder / name).is_file():
                try:
                    names = _cached(_parse_class_names, folder / name, config.max_sidecar_bytes)
                except _Malformed as exc:
                    raise _Malformed(f"class names {folder / name}: {exc}") from None
                break
        if names:
            break
    boxes: list[tuple[Box, str | None]] = []
    for number, line in enumerate(_read_text(path, config.max_sidecar_bytes).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (5, 6):  # a sixth field is a detector's confidence
            raise _Malformed(f"line {number}: expected 'class cx cy w h', got {line.strip()!r}")
        if not fields[0].isdigit():
            raise _Malformed(f"line {number}: class {fields[0]!r} is not a non-negative integer")
        cls = int(fields[0])
        cx, cy, w, h = (_number(v, f"line {number}") for v in fields[1:5])
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        boxes.append((box, names[cls] if cls < len(names) else str(cls)))
    region, label = _region(boxes, "yolo")
    return _Found(region=region, label=label)


def _parse_class_names(path: Path, limit: int) -> tuple[str, ...]:
    return tuple(line.strip() for line in _read_text(path, limit).splitlines() if line.strip())


def _parse_coco(path: Path, limit: int) -> _CocoIndex:
    try:
        doc = json.loads(_read_text(path, limit))
        categories = {c["id"]: str(c["name"]) for c in doc.get("categories", [])}
        names = {img["id"]: _normalise(img["file_name"]) for img in doc["images"]}
        boxes: dict[str, list[tuple[Box, str | None]]] = {name: [] for name in names.values()}
        skipped = 0
        for ann in doc.get("annotations", []):
            x, y, w, h = (_number(v, "bbox value") for v in ann["bbox"])
            if w <= 0 or h <= 0:
                skipped += 1
                continue
            boxes[names[ann["image_id"]]].append(((x, y, x + w, y + h), categories.get(ann.get("category_id"))))
    except json.JSONDecodeError as exc:
        raise _Malformed(f"invalid JSON ({exc})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _Malformed(f"not a COCO detection file ({type(exc).__name__}: {exc})") from None
    if skipped:
        logger.info("%s: skipped %d annotations with an empty bbox", path, skipped)
    by_base: dict[str, list[str]] = {}
    for name in boxes:
        by_base.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    return _CocoIndex(annotations={k: tuple(v) for k, v in boxes.items()},
                      by_base={k: tuple(v) for k, v in by_base.items()})


def _normalise(file_name: str) -> str:
    name = str(file_name).replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _coco_lookup(index: _CocoIndex, relative_names: list[str], base_name: str) -> _Found | None:
    """The image's COCO boxes, or ``None`` when the file does not list the image."""
    for name in relative_names:
        if name in index.annotations:
            return _coco_found(index.annotations[name])
    matches = index.by_base.get(base_name, ())
    if len(matches) > 1:
        raise _Malformed(f"{len(matches)} images are named {base_name!r}: cannot tell which one is meant")
    return _coco_found(index.annotations[matches[0]]) if matches else None


def _coco_found(boxes: tuple[tuple[Box, str | None], ...]) -> _Found:
    region, label = _region(list(boxes), "coco")
    return _Found(region=region, label=label)


def _matches_any(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _coco_files(folders: tuple[Path, ...], patterns: list[str]) -> list[Path]:
    """COCO files in ``folders`` (deduplicated, in order), names sorted within a folder."""
    out: list[Path] = []
    for folder in dict.fromkeys(folders):
        try:
            mtime_ns = folder.stat().st_mtime_ns
        except OSError as exc:
            logger.warning("%s: cannot list folder for COCO files (%s)", folder, exc.strerror)
            continue
        out.extend(folder / name for name in _list_matching(str(folder), mtime_ns, tuple(patterns)))
    return out


@lru_cache(maxsize=256)
def _list_matching(folder: str, mtime_ns: int, patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Names in ``folder`` matching ``patterns``; cached per folder mtime (a new file changes it),
    so a folder of 10,000 images is listed once per change, not once per image. On file systems with
    coarse timestamps a COCO file added in the same clock tick is seen after the folder's next change."""
    with os.scandir(folder) as entries:
        return tuple(sorted(e.name for e in entries
                            if any(fnmatch.fnmatchcase(e.name, p) for p in patterns) and e.is_file()))


def _cached(parser: Callable[[Path, int], Any], path: Path, limit: int) -> Any:
    """``parser(path, limit)``, cached by (path, mtime, size); a malformed file is cached too."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise _Malformed(f"cannot read file ({exc.strerror})") from None
    outcome = _parse_cached(parser, str(path), stat.st_mtime_ns, stat.st_size, limit)
    if isinstance(outcome, _Malformed):
        raise _Malformed(str(outcome))
    return outcome


@lru_cache(maxsize=64)
def _parse_cached(parser: Callable[[Path, int], Any], path: str, mtime_ns: int, size: int, limit: int) -> Any:
    try:
        return parser(Path(path), limit)
    except _Malformed as exc:
        return exc
