"""Where images come from: sources registered by the scheme of their location (:data:`SOURCES`), and the
sidecar formats next to images (:mod:`worker.sources.sidecars`).

A location without a scheme (a path) or with ``file://`` is a folder (:mod:`worker.sources.folder`);
``redis://`` and ``mqtt://`` are queues of ``camwatch.image.v1`` events (:mod:`worker.sources.queue`),
which register their images themselves (:meth:`QueueSource.pump`) instead of returning files from
``poll()``. A new source is one module here that registers an opener under its scheme with
:func:`register_source`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from camwatch.locations import source_scheme
from camwatch.settings import Settings
from worker.sources.folder import FileCandidate, FolderSource
from worker.sources.queue import QueueSource, open_mqtt, open_redis

__all__ = ["SOURCES", "FileCandidate", "QueueSource", "Source", "SourceKind", "open_source", "register_source",
           "source_scheme"]


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


register_source("redis", "a Redis stream of camwatch.image.v1 events read by a consumer group "
                         "(redis://host:6379/0?stream=camwatch.images&group=camwatch)")(open_redis)
register_source("mqtt", "an MQTT 5 topic filter of camwatch.image.v1 events, shared subscription, QoS 1 "
                        "(mqtt://host:1883/camwatch/images/#?group=camwatch)")(open_mqtt)


def readable_roots(source: Source) -> tuple[Path, ...]:
    """The folders the images of ``source`` may be read from: a folder's root; a queue's spool and the
    roots its ``file://`` events may name (``allowed_roots``)."""
    if isinstance(source, QueueSource):
        return (source.root, *source.intake.allowed_roots)
    return (source.root,)
