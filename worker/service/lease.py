"""Liveness while a batch runs: a thread that renews the leases of the batch in hand and writes the
worker's heartbeat every ``heartbeat_seconds``.

Without it a batch slower than ``lease_seconds`` (a big model, a slow disk, a GPU queue) would let another
worker take its images and process them a second time, and a long batch would look like a dead worker.
The main thread says which images it holds (:meth:`LeaseKeeper.hold`) and lets them go once their
results are written; the keeper renews exactly those. Renewal failures are logged and retried at the next
beat (the lease is several beats long); images another worker took over are reported and left to it
(:func:`db.results.complete_batch` writes only images still held).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from db import renew_lease
from db.faults import describe

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews ``claimant``'s held leases and calls ``beat`` every ``interval`` seconds, from a daemon thread."""

    def __init__(self, engine: Engine, claimant: str, *, lease_seconds: float, interval: float,
                 beat: Callable[[], None]) -> None:
        self.engine, self.claimant, self.lease_seconds, self.interval = engine, claimant, lease_seconds, interval
        self._beat = beat
        self._held: tuple[int, ...] = ()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: set[int] = set()  # held images another worker took over (their results are not written)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="camwatch-lease-keeper", daemon=True)
            self._thread.start()

    def hold(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._held = tuple(ids)
            self.lost = set()

    def release(self) -> None:
        with self._lock:
            self._held = ()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval))
            self._thread = None

    def renew_now(self) -> None:
        """Renew the held leases (also called by the thread)."""
        with self._lock:
            held = self._held
        if not held:
            return
        renewed = renew_lease(self.engine, self.claimant, held, self.lease_seconds)
        lost = set(held) - renewed
        if lost:
            with self._lock:
                if self._held == held:
                    self.lost |= lost

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for task, name in ((self.renew_now, "renewing leases"), (self._beat, "writing the heartbeat")):
                try:
                    task()
                except Exception as exc:  # a database hiccup: logged, tried again at the next beat
                    log.warning("%s failed (%s); trying again in %.1f s", name, describe(exc), self.interval)
