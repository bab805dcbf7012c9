"""What every sidecar format shares: the configuration, the result, the registry, confined reading
(:mod:`camwatch.files`: inside the source root, regular files only, size-capped), JSON parsing that
survives any input, number/box checks with a cap on boxes, and a parse cache keyed by (path, mtime, size).

Reasons in :class:`Malformed` name positions and kinds (``line 3``, ``box 2``, ``"label"``), never the
file's content: a sidecar may be a link to a secret, and its text must not reach the logs or the database.

A format is a :class:`SidecarFormat` registered under a stable key (:func:`register`): ``candidates``
names the files that may hold the image's annotations (no I/O beyond listing), ``read`` parses one of them
into :class:`Annotations` (or ``None`` when the file does not list this image, as a COCO file may not), and
raises :class:`Malformed` with the reason when the file cannot be used. ``suffixes`` tells the folder
source which files are annotations, not images.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from camwatch.files import UnsafeFile, read_confined
from camwatch.regions import Box, ObjectRegion

logger = logging.getLogger(__name__)


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
    max_coco_bytes: int = 128 << 20
    max_boxes: int = 1000  # boxes per image; a file giving more is malformed (the region maths is linear)

    def __post_init__(self) -> None:
        for key, box in self.roi.items():
            try:
                ObjectRegion(boxes=(tuple(float(v) for v in box),), source="roi")  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"roi[{key!r}] = {box!r} is not a valid (x0, y0, x1, y1) box: {exc}") from None


@dataclass
class Annotations:
    """What sidecars say about one image (one file's findings, or all of them merged): region, label, tags,
    capture time, and warnings about what was ignored."""

    region: ObjectRegion | None = None
    label: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    captured_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)


class Malformed(Exception):
    """A sidecar that cannot be used; the message is the reason."""


@dataclass(frozen=True)
class ImageContext:
    """The image whose annotations are read: its path, folder, stem, source root, path relative to the
    root, stored size (``None`` when unknown) and the configuration."""

    path: Path
    source_root: Path
    relative: Path
    width: int | None
    height: int | None
    config: AnnotationConfig

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def folders(self) -> tuple[Path, ...]:
        """The image's folder, then the source root (once when they are the same)."""
        return tuple(dict.fromkeys((self.folder, self.source_root)))


class SidecarFormat:
    """Base of the registered formats (see the module docstring)."""

    key: ClassVar[str]
    description: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    def candidates(self, image: ImageContext) -> Sequence[Path]:
        raise NotImplementedError

    def read(self, path: Path, image: ImageContext) -> Annotations | None:
        raise NotImplementedError


#: Registered formats in priority order: the first that says something about a property wins.
SIDECAR_FORMATS: dict[str, SidecarFormat] = {}


def register(cls: type[SidecarFormat]) -> type[SidecarFormat]:
    if cls.key in SIDECAR_FORMATS:
        raise ValueError(f"sidecar format {cls.key!r} registered twice")
    SIDECAR_FORMATS[cls.key] = cls()
    return cls


# ---------------------------------------------------------------------------------------------- helpers


def read_bytes(path: Path, limit: int, root: Path) -> bytes:
    """The bytes of the sidecar ``path``, read only if it is a regular file inside ``root`` of at most
    ``limit`` bytes (:func:`camwatch.files.read_confined`); else :class:`Malformed` with the reason."""
    try:
        return read_confined(path, root, max_bytes=limit)
    except UnsafeFile as exc:
        raise Malformed(exc.reason) from None


def read_text(path: Path, limit: int, root: Path) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a byte-order mark is dropped)."""
    try:
        return read_bytes(path, limit, root).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8 text") from None


def parse_json(text: str) -> Any:
    """``json.loads`` that fails only with :class:`Malformed` (also when nested too deeply, or on a number
    with too many digits)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Malformed(f"invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise Malformed("invalid JSON (nested too deeply)") from None
    except ValueError:
        raise Malformed("invalid JSON (a number with too many digits)") from None


def number(value: Any, what: str) -> float:
    """A finite number from a JSON/XML/text value, else :class:`Malformed` (``what`` names its place)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Malformed(f"{what} is not a number (got {'nothing' if value is None else type(value).__name__})")
    try:
        out = float(value)
    except (ValueError, OverflowError):
        raise Malformed(f"{what} is not a number") from None
    if not math.isfinite(out):
        raise Malformed(f"{what} is not finite")
    return out


def check_box_count(count: int, limit: int) -> None:
    """:class:`Malformed` when a file gives more than ``limit`` boxes for one image."""
    if count > limit:
        raise Malformed(f"{count} boxes for one image, above the limit of {limit} (max_boxes)")


def region_of(boxes: list[tuple[Box, str | None]], source: str,
              limit: int = 1000) -> tuple[ObjectRegion | None, str | None]:
    """Region of all boxes and the label of the largest one (at most ``limit`` boxes)."""
    if not boxes:
        return None, None
    check_box_count(len(boxes), limit)
    try:
        region = ObjectRegion(boxes=tuple(b for b, _ in boxes), source=source)
    except ValueError:
        index = next(i for i, (b, _) in enumerate(boxes, start=1) if not (b[2] > b[0] and b[3] > b[1]))
        raise Malformed(f"box {index} is empty or its corners are swapped (expected x0 < x1 and y0 < y1)"
                        ) from None
    largest = max(boxes, key=lambda item: (item[0][2] - item[0][0]) * (item[0][3] - item[0][1]))
    return region, largest[1]


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def cached(parser: Callable[[Path, int, Path], Any], path: Path, limit: int, root: Path) -> Any:
    """``parser(path, limit, root)``, cached by (path, mtime, size); a malformed file is cached too."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise Malformed(f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    outcome = _parse_cached(parser, str(path), stat.st_mtime_ns, stat.st_size, limit, str(root))
    if isinstance(outcome, Malformed):
        raise Malformed(str(outcome))
    return outcome


@lru_cache(maxsize=64)
def _parse_cached(parser: Callable[[Path, int, Path], Any], path: str, mtime_ns: int, size: int, limit: int,
                  root: str) -> Any:
    try:
        return parser(Path(path), limit, Path(root))
    except Malformed as exc:
        return exc
