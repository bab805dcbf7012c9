"""Stable consumer names: each worker process on a host holds a numbered *slot* per queue, by an exclusive
``flock`` on a lock file, and names itself ``<host>-<slot>``.

Two processes on one host never hold the same slot, and a process that restarts after a crash (the kernel
drops the dead process's lock) takes the lowest free slot again: the same name as before, so it resumes
its own pending Redis entries and its persistent MQTT session at once instead of waiting for a claim
timeout or a session expiry. Lock files live in a per-user folder of the system's temporary directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

MAX_SLOTS = 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def lock_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"camwatch-slots-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def host_name() -> str:
    """This host's name, reduced to characters that are safe in consumer names and client ids."""
    return _UNSAFE.sub("-", socket.gethostname()) or "host"


class Slot:
    """The lowest free slot of ``queue_key`` on this host, held until :meth:`release` (or process exit)."""

    def __init__(self, queue_key: str) -> None:
        digest = hashlib.sha256(queue_key.encode("utf-8")).hexdigest()[:16]
        folder = lock_folder()
        for number in range(MAX_SLOTS):
            path = folder / f"{digest}-{number}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.number = number
            self._fd: int | None = fd
            return
        raise RuntimeError(f"all {MAX_SLOTS} consumer slots of this queue are taken on this host")

    @property
    def name(self) -> str:
        """``<host>-<slot>``: this process's consumer name for the queue."""
        return f"{host_name()}-{self.number}"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
