"""Reading files under a root without ever leaving it, and the text form (uri) of any file name.

Confinement. A file is read only when

* its real location (every symlink followed, :func:`os.path.realpath`) is inside the root's real location,
* it is a regular file (a FIFO would block the reader forever, a device has no end), and
* it is not larger than the caller's limit (checked before reading, and again while reading, since a file
  may grow in between).

The check is made on the real path, which is then opened with ``O_NOFOLLOW | O_NONBLOCK`` (opening a FIFO
never blocks); the open file must be the very file that was checked (same device and inode, from
``fstat``), and on Linux the kernel's own name for the open descriptor (``/proc/self/fd/N``) must still be
inside the root. A path swapped for a symlink, a FIFO or another file between the check and the open is
refused, not followed. Refusals raise :class:`UnsafeFile`, whose message names the file and the reason and
never quotes its content.

Names. File names are bytes on POSIX; one that is not valid UTF-8 cannot be stored as text in a database.
:func:`uri_for_path` writes such a name with each undecodable byte as ``\\xNN`` (so ``bad\\xff.jpg``), and
:func:`paths_for_uri` gives the paths a uri may name: the literal one and, when the uri holds such
escapes, the one with those bytes restored. Readers try them in order; the content hash decides.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")
_CHUNK = 1 << 20
#: Default cap on an image file's size (the worker's ``max_image_bytes``; the dashboard's originals).
DEFAULT_MAX_IMAGE_BYTES = 256 << 20


class UnsafeFile(Exception):
    """A file that is not read: outside the root, not a regular file, too large, gone or unreadable.

    ``str()`` is ``"<path>: <reason>"`` (the path in its printable :func:`display_path` form)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{display_path(path)}: {reason}")


def display_path(path: str | Path) -> str:
    """``path`` as printable text: bytes that are not UTF-8 (surrogate escapes) written as ``\\xNN``."""
    return uri_for_path(str(path))


def uri_for_path(path: str | Path) -> str:
    """The text stored for a file name: the name itself when it is valid UTF-8 (the usual case), else the
    name with each undecodable byte written as ``\\xNN``."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return text


def paths_for_uri(uri: str) -> list[Path]:
    """Paths a stored uri may name, most likely first: the uri itself, then (when it holds ``\\xNN``
    escapes of :func:`uri_for_path`) the name with those bytes restored."""
    out = [Path(uri)]
    raw = uri.encode("utf-8")
    if _ESCAPED_BYTE.search(raw):
        restored = _ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
        out.append(Path(os.fsdecode(restored)))
    return out


def is_within(path: str | Path, root: str | Path) -> bool:
    """Whether the *real* location of ``path`` is ``root``'s real location or below it."""
    return _inside(os.path.realpath(path), os.path.realpath(root))


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def check_confined(path: str | Path, root: str | Path) -> tuple[str, os.stat_result]:
    """The real path and stat of ``path`` if it is a regular file inside ``root``; else :class:`UnsafeFile`."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if not _inside(real, real_root):
        raise UnsafeFile(path, "resolves outside the source root (a symlink leading out?): not read")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise UnsafeFile(path, "file not found") from None
    except OSError as exc:
        raise UnsafeFile(path, f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(path, f"is {_kind(st.st_mode)}, not a regular file: not read")
    return real, st


def _descriptor_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc (macOS) or no permission: the inode comparison still applies
        return None


@contextmanager
def open_confined(path: str | Path, root: str | Path, *, max_bytes: int) -> Iterator[BinaryIO]:
    """A binary file object for ``path`` once it passed the checks of the module docstring."""
    real, st = check_confined(path, root)
    if st.st_size > max_bytes:
        raise UnsafeFile(path, f"file is {st.st_size} bytes, above the limit of {max_bytes}")
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:  # ELOOP: swapped for a symlink since the check
        raise UnsafeFile(path, f"cannot open file ({exc.strerror or type(exc).__name__})") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(opened.st_mode):
            raise UnsafeFile(path, "replaced by another file while it was opened: not read")
        where = _descriptor_path(fd)
        if where is not None and not _inside(where, os.path.realpath(root)):
            raise UnsafeFile(path, "moved outside the source root while it was opened: not read")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_confined(path: str | Path, root: str | Path, *, max_bytes: int) -> bytes:
    """All bytes of ``path`` (see :func:`open_confined`), at most ``max_bytes``."""
    try:
        with open_confined(path, root, max_bytes=max_bytes) as handle:
            data = handle.read(max_bytes + 1)
    except UnsafeFile:
        raise
    except OSError as exc:
        raise UnsafeFile(path, f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise UnsafeFile(path, f"file grew above the limit of {max_bytes} bytes while it was read")
    return data


def hash_confined(path: str | Path, root: str | Path, *, max_bytes: int) -> tuple[str, int]:
    """``(sha256 hex, size)`` of ``path`` read in blocks (see :func:`open_confined`), at most ``max_bytes``."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open_confined(path, root, max_bytes=max_bytes) as handle:
            while block := handle.read(_CHUNK):
                size += len(block)
                if size > max_bytes:
                    raise UnsafeFile(path, f"file grew above the limit of {max_bytes} bytes while it was read")
                digest.update(block)
    except UnsafeFile:
        raise
    except OSError as exc:
        raise UnsafeFile(path, f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    return digest.hexdigest(), size
