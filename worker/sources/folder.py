"""The folder source: finds image files under a root once they are completely written.

A file version (``size``, ``mtime_ns``) is *complete* when

* a watchdog ``closed`` event (a writer closed it) or ``moved`` event (renamed into place) names it, or
* its size and mtime stayed the same across observations spanning at least ``stable_seconds``.

The second rule covers what events miss: network file systems (no inotify), files renamed in from an
unwatched directory (only ``created``). A writer that closes the file before it is finished, or pauses
longer than ``stable_seconds`` mid-file, defeats both rules: write to ``name.part`` and rename instead.

Each complete version is returned at most once per :class:`FolderSource`; a file rewritten later
(new size or mtime) is returned again. ``FileCandidate.uri`` is the file's absolute path below the
*resolved* root, with symlinks inside the root kept as found (so it is also the path to open);
moving the root elsewhere changes every URI. A name that is not valid UTF-8 (``bad\\xff.jpg``) is found
like any other; its uri writes the undecodable bytes as ``\\xNN`` (:func:`camwatch.files.uri_for_path`),
while ``path`` keeps the real name.

Ignored: hidden files and folders (``.*``), ``*.part``, ``*.tmp``, ``*~``, sidecar files, extensions
outside the allowlist. Symlinks (files and folders) are followed only when their resolved target is
inside the resolved root; every real folder is listed once per scan (by device and inode), so
symlink loops end and a folder reachable by its real path is reported under that path.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from camwatch.files import uri_for_path
from worker.sources.sidecars import is_sidecar_file

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
_TEMP_ENDINGS = (".part", ".tmp", "~")


@dataclass(frozen=True)
class FileCandidate:
    """A complete file: ``path`` (absolute, below the resolved root), ``uri`` (``str(path)``, or its
    printable form for a name that is not UTF-8; stored in the database), ``relative_path`` (POSIX, relative to the root), size and mtime of this version."""

    path: Path
    uri: str
    relative_path: str
    size_bytes: int
    mtime_ns: int


@dataclass(frozen=True)
class _Pending:
    path: str
    version: tuple[int, int]  # (size, mtime_ns)
    since: float  # monotonic time of the first observation of this version


class _EventQueue(FileSystemEventHandler):
    """Collects watchdog events (observer thread) until the next ``poll()`` drains them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._complete: set[str] = set()
        self._touched: set[str] = set()
        self._folders: set[str] = set()

    def _add(self, bucket: set[str], path: bytes | str) -> None:
        with self._lock:
            bucket.add(os.fsdecode(path))

    def on_closed(self, event: FileSystemEvent) -> None:
        self._add(self._complete, event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._add(self._folders if event.is_directory else self._complete, event.dest_path)

    def on_created(self, event: FileSystemEvent) -> None:
        self._add(self._folders if event.is_directory else self._touched, event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._add(self._touched, event.src_path)

    def drain(self) -> tuple[set[str], set[str], set[str]]:
        with self._lock:
            drained = (self._complete, self._touched, self._folders)
            self._complete, self._touched, self._folders = set(), set(), set()
        return drained


class FolderSource:
    """Complete image files under ``root``; call :meth:`poll` from one thread (see module docstring)."""

    def __init__(self, root: Path, *, name: str | None = None, stable_seconds: float = 2.0,
                 rescan_interval: float = 30.0, use_events: bool = True,
                 extensions: Iterable[str] = IMAGE_EXTENSIONS) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"{self.root}: the folder source's root is not a directory")
        self.name = name or self.root.name
        self.stable_seconds = stable_seconds
        self.rescan_interval = rescan_interval
        self._extensions = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        self._emitted: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, _Pending] = {}
        self._last_scan: float | None = None
        self._events = _EventQueue()
        self._observer: BaseObserver | None = None
        if use_events:
            self._start_observer()

    @property
    def waiting(self) -> int:
        """Files seen but not yet known to be complete (still changing, or not observed long enough)."""
        return len(self._pending)

    def _start_observer(self) -> None:
        observer = Observer()
        try:
            observer.schedule(self._events, str(self.root), recursive=True)
            observer.start()
        except OSError as exc:  # e.g. the inotify watch limit
            logger.warning("%s: file events unavailable (%s); relying on rescans every %.0f s",
                           self.root, exc, self.rescan_interval)
            return
        self._observer = observer

    def close(self) -> None:
        """Stop the event observer (idempotent)."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None

    def __enter__(self) -> FolderSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def poll(self) -> list[FileCandidate]:
        """Files that became complete since the last call, oldest mtime first.

        Cheap between rescans: it drains the events and re-stats the files awaiting stability.
        """
        now = time.monotonic()
        complete, touched, folders = self._events.drain()
        observed = self._observations(now, touched - complete, folders)
        ready: list[FileCandidate] = []
        for path in complete:
            relative = self._relative(path)
            if relative is not None and (st := self._stat_file(path)) is not None:
                observed.pop(relative, None)
                self._pending.pop(relative, None)
                if self._emitted.get(relative) != (st.st_size, st.st_mtime_ns):
                    ready.append(self._emit(relative, path, st))
        for relative, (path, st) in observed.items():
            candidate = self._observe(relative, path, st, now)
            if candidate is not None:
                ready.append(candidate)
        ready.sort(key=lambda c: (c.mtime_ns, c.relative_path))
        return ready

    def _observations(self, now: float, touched: set[str], folders: set[str]) -> dict[str, tuple[str, os.stat_result]]:
        """Stat results by relative path: a full scan when due, folders and files named by events,
        and the files awaiting stability."""
        observed: dict[str, tuple[str, os.stat_result]] = {}
        if self._last_scan is None or now - self._last_scan >= self.rescan_interval:
            listed_all = self._scan(str(self.root), "", observed)
            if listed_all:  # a folder that failed to list must not make its files look deleted
                self._forget_missing(observed)
            self._last_scan = now
        for folder in folders:
            relative = self._relative(folder)
            if relative is not None and Path(folder).is_dir():
                self._scan(folder, relative, observed)
        for path in touched:
            relative = self._relative(path)
            if relative is not None and relative not in observed and (st := self._stat_file(path)) is not None:
                observed[relative] = (path, st)
        for relative, pending in list(self._pending.items()):
            if relative not in observed:
                if (st := self._stat_file(pending.path)) is None:
                    del self._pending[relative]
                else:
                    observed[relative] = (pending.path, st)
        return observed

    def _observe(self, relative: str, path: str, st: os.stat_result, now: float) -> FileCandidate | None:
        version = (st.st_size, st.st_mtime_ns)
        if self._emitted.get(relative) == version:
            self._pending.pop(relative, None)
            return None
        pending = self._pending.get(relative)
        if pending is None or pending.version != version:
            self._pending[relative] = _Pending(path, version, now)
            return None
        if now - pending.since < self.stable_seconds:
            return None
        del self._pending[relative]
        return self._emit(relative, path, st)

    def _emit(self, relative: str, path: str, st: os.stat_result) -> FileCandidate:
        self._emitted[relative] = (st.st_size, st.st_mtime_ns)
        return FileCandidate(path=Path(path), uri=uri_for_path(path), relative_path=relative, size_bytes=st.st_size,
                             mtime_ns=st.st_mtime_ns)

    def _forget_missing(self, observed: dict[str, tuple[str, os.stat_result]]) -> None:
        """Drop state for files a complete scan no longer finds (deleted or moved away)."""
        for table in (self._emitted, self._pending):
            for relative in [r for r in table if r not in observed]:
                del table[relative]

    def _eligible_name(self, name: str) -> bool:
        lower = name.lower()
        return (lower[lower.rfind("."):] in self._extensions and not name.startswith(".")
                and not lower.endswith(_TEMP_ENDINGS) and not is_sidecar_file(lower))

    def _inside(self, path: str) -> bool:
        return Path(os.path.realpath(path)).is_relative_to(self.root)

    def _relative(self, path: str) -> str | None:
        """POSIX path relative to the root for an event path, or ``None`` when it is to be ignored."""
        relative = os.path.relpath(path, self.root)
        parts = Path(relative).parts
        if not parts or parts[0] == ".." or any(p.startswith(".") for p in parts) or not self._inside(path):
            return None
        return "/".join(parts)

    def _stat_file(self, path: str) -> os.stat_result | None:
        if not self._eligible_name(os.path.basename(path)):
            return None
        try:
            st = os.stat(path)
        except OSError as exc:  # deleted or renamed since it was seen
            logger.debug("%s: cannot stat (%s)", path, exc.strerror)
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def _scan(self, start: str, start_relative: str, observed: dict[str, tuple[str, os.stat_result]]) -> bool:
        """Add the eligible files below ``start`` to ``observed``; False if some folder could not be listed.

        Breadth-first over real folders; folders reached through symlinks wait until no real folder is
        left, so a folder visited under its real path is skipped when a link leads to it again.
        """
        queue: deque[tuple[str, str]] = deque([(start, start_relative)])
        linked: deque[tuple[str, str]] = deque()
        visited: set[tuple[int, int]] = set()
        listed_all = True
        while queue or linked:
            folder, relative = queue.popleft() if queue else linked.popleft()
            try:
                folder_stat = os.stat(folder)
                if (folder_stat.st_dev, folder_stat.st_ino) in visited:
                    continue
                visited.add((folder_stat.st_dev, folder_stat.st_ino))
                entries = list(self._entries(folder))
            except OSError as exc:
                logger.warning("%s: cannot list folder (%s)", folder, exc.strerror or exc)
                listed_all = False
                continue
            prefix = f"{relative}/" if relative else ""
            for entry in entries:
                try:
                    if entry.is_symlink() and not self._inside(entry.path):
                        continue
                    if entry.is_dir():
                        (linked if entry.is_symlink() else queue).append((entry.path, prefix + entry.name))
                    elif self._eligible_name(entry.name) and entry.is_file():
                        observed[prefix + entry.name] = (entry.path, entry.stat())
                except OSError as exc:  # vanished or a dangling link
                    logger.debug("%s: skipped (%s)", entry.path, exc.strerror or exc)
        return listed_all

    @staticmethod
    def _entries(folder: str) -> Iterator[os.DirEntry[str]]:
        with os.scandir(folder) as entries:
            yield from (e for e in entries if not e.name.startswith("."))

