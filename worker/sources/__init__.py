"""Where images come from: sources registered by the scheme of their location (:data:`SOURCES`), and the
sidecar formats next to images (:mod:`worker.sources.sidecars`).

A location without a scheme (a path) or with ``file://`` is a folder (:mod:`worker.sources.folder`). A new
source is one module here that registers an opener under its scheme with :func:`register_source`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from camwatch.settings import Settings
from worker.sources.folder import FileCandidate, FolderSource


class Source(Protocol):
    """What the worker needs of a source: complete files to register, whether more are on their way."""

    name: str
    root: Path

    @property
    def waiting(self) -> int: ...

    def poll(self) -> list[FileCandidate]: ...

    def close(self) -> None: ...


Opener = Callable[[str, str | None, Settings], Source]


@dataclass(frozen=True)
class SourceKind:
    scheme: str
    description: str
    open: Opener


#: Source kinds by scheme (``""`` = a plain path).
SOURCES: dict[str, SourceKind] = {}


def register_source(scheme: str, description: str) -> Callable[[Opener], Opener]:
    def decorate(opener: Opener) -> Opener:
        if scheme in SOURCES:
            raise ValueError(f"source scheme {scheme!r} registered twice")
        SOURCES[scheme] = SourceKind(scheme, description, opener)
        return opener
    return decorate


def source_scheme(location: str) -> str:
    """The scheme of a source location: ``""`` for a plain path (Windows drive letters included)."""
    scheme = urlsplit(location).scheme
    return "" if len(scheme) <= 1 else scheme.lower()


def open_source(location: str, *, name: str | None, settings: Settings) -> Source:
    """Open the source at ``location`` (a folder path, or ``scheme://...`` of a registered kind)."""
    scheme = source_scheme(location)
    kind = SOURCES.get(scheme)
    if kind is None:
        known = ", ".join(f"{s}://" for s in SOURCES if s) or "none"
        raise ValueError(f"source {location!r}: unknown scheme {scheme!r} (a folder path, or one of: {known})")
    return kind.open(location, name, settings)


@register_source("", "a folder of image files (a path)")
@register_source("file", "a folder of image files (file:///path)")
def _open_folder(location: str, name: str | None, settings: Settings) -> Source:
    path = Path(urlsplit(location).path) if source_scheme(location) == "file" else Path(location)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: source folder not found")
    return FolderSource(path, name=name, stable_seconds=settings.stable_seconds,
                        rescan_interval=settings.rescan_seconds, use_events=settings.use_events)
