"""Where the object is, its label, tags and capture time, read from files next to an image.

Formats are registered by stable keys in priority order (:data:`SIDECAR_FORMATS`; one module each), the
first match of each property wins:

1. ``json`` — camwatch's own ``IMAGE.json`` / ``STEM.json`` (:mod:`.json_sidecar`): boxes, label, tags,
   capture time.
2. ``mask`` — ``STEM.mask.png``, nonzero pixels are the object (:mod:`.mask`).
3. ``voc`` — Pascal VOC ``STEM.xml`` (:mod:`.voc`).
4. ``yolo`` — ``STEM.txt`` with ``classes.txt`` / ``obj.names`` (:mod:`.yolo`).
5. ``coco`` — a COCO file in the image's folder or the source root (:mod:`.coco`).
6. ``AnnotationConfig.roi``: a fixed box per source name or glob on the relative path (fixed cameras).

Labels come from the first source above that names one (VOC, YOLO and COCO: the class of the largest
box). Tags: ``AnnotationConfig.path_tags`` names the leading folders of the relative path, and the JSON
sidecar's tags override them. ``captured_at`` comes from the JSON sidecar only; a time without a zone
is UTC.

All boxes and masks refer to the image **as stored** (before EXIF orientation; see
:func:`camwatch.imaging.decode.orient_region`). A malformed sidecar does not fail the image: it
contributes nothing, a warning names the file and the reason, and the region is ``None`` (not a
lower-priority source): we cannot tell which object the broken file meant, and measuring against another
region would silently mix two definitions of "the object" in the statistics.

Every sidecar is read confined to the source root (:mod:`camwatch.files`: no symlink out of it, regular
files only, size-capped); one that is not is malformed, with the reason. Any other exception a reader
raises (a bug, a parser limit) is also a malformed sidecar, described by the exception's class only: the
image is still processed and the other images never notice.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from camwatch.files import display_path
from camwatch.regions import ObjectRegion
from worker.sources.sidecars import coco, json_sidecar, mask, voc, yolo  # noqa: F401  (register the formats)
from worker.sources.sidecars.base import (
    SIDECAR_FORMATS,
    AnnotationConfig,
    Annotations,
    ImageContext,
    Malformed,
)

__all__ = ["SIDECAR_FORMATS", "AnnotationConfig", "Annotations", "is_sidecar_file", "read_annotations"]

_SUFFIXES = tuple(sorted({s for f in SIDECAR_FORMATS.values() for s in f.suffixes}))


def is_sidecar_file(path: Path | str) -> bool:
    """True for names that are (or may be) annotation files of a registered format (``*.mask.png``,
    ``.json``, ``.xml``, ``.txt``, ``.names``). Decided on the name alone, without I/O."""
    return os.path.basename(path).lower().endswith(_SUFFIXES)


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
    image = ImageContext(image_path, source_root, relative, width, height, config)
    result = Annotations(tags=dict(zip(config.path_tags, relative.parts[:-1], strict=False)))
    found: list[Annotations] = []
    broken = False
    for fmt in SIDECAR_FORMATS.values():
        try:
            candidates = list(fmt.candidates(image))
        except Exception as exc:  # e.g. a folder that cannot be listed: recorded, not raised
            result.warnings.append(f"{fmt.key} sidecars: cannot look for them ({type(exc).__name__})")
            broken = True
            continue
        for sidecar in candidates:
            if not os.path.lexists(sidecar):
                continue
            try:
                item = fmt.read(sidecar, image)
            except Malformed as exc:
                result.warnings.append(f"{display_path(sidecar)}: {exc}")
                broken = True
                break
            except Exception as exc:  # any failure is this sidecar's, recorded without its message
                result.warnings.append(f"{display_path(sidecar)}: could not be read as {fmt.key} "
                                       f"({type(exc).__name__})")
                broken = True
                break
            if item is not None:
                found.append(item)
                break
    for item in found:
        result.warnings.extend(item.warnings)
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
