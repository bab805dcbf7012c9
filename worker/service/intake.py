"""The read stage: a claimed image's bytes, read confined to its source root and checked against the hash
it was registered with.

The bytes that are decoded are the bytes that were hashed: the file is read once (confined, size-capped:
:func:`camwatch.files.read_confined`), its sha256 compared with the registered one, and decoding works on
those bytes in memory. A file whose content changed since it was registered (rewritten in place, or
swapped for another file) is not silently decoded under the old hash: :class:`ContentChanged` carries
what to register instead, and the claimed image becomes an error naming the reason.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from camwatch.capture_time import registration_time
from camwatch.files import UnsafeFile, paths_for_uri, read_confined
from db.records import ClaimedImage, FileFound
from db.types import utcnow


class ContentChanged(Exception):
    """The file under a claimed image's uri no longer holds the registered bytes; ``found`` registers it anew."""

    def __init__(self, found: FileFound) -> None:
        self.found = found
        super().__init__("the file's content changed after it was registered (sha256 differs); its new "
                         "content is registered as a new image")


@dataclass(frozen=True)
class ReadImage:
    """A claimed image's file: its path (the real name, also when the uri escapes bytes), its bytes and
    its modification time (ns; None when it cannot be read)."""

    path: Path
    data: bytes
    mtime_ns: int | None = None


def read_claimed(claim: ClaimedImage, root: Path, max_bytes: int) -> ReadImage:
    """The bytes of ``claim``'s file under ``root`` when they still hash to ``claim.sha256``.

    Raises :class:`camwatch.files.UnsafeFile` (outside the root, not a regular file, too large, gone) or
    :class:`ContentChanged`.
    """
    missing: UnsafeFile | None = None
    changed: tuple[Path, bytes] | None = None
    for path in paths_for_uri(claim.uri):
        try:
            data = read_confined(path, root, max_bytes=max_bytes)
        except UnsafeFile as exc:
            if exc.reason == "file not found":
                missing = missing or exc
                continue
            raise
        if hashlib.sha256(data).hexdigest() == claim.sha256:
            try:
                mtime: int | None = os.stat(path).st_mtime_ns
            except OSError:
                mtime = None
            return ReadImage(path, data, mtime)
        changed = changed or (path, data)
    if changed is not None:
        path, data = changed
        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError:
            mtime_ns = 0
        raise ContentChanged(FileFound(
            uri=claim.uri, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), mtime_ns=mtime_ns,
            source=claim.source, captured_at=registration_time(mtime_ns, utcnow())))
    assert missing is not None
    raise missing
