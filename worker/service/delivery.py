"""Delivering notices off the worker's hot path: one daemon thread and one bounded queue per receiver.

:meth:`Delivery.submit` never blocks: a full queue drops its oldest notice (logged). Each notice is sent
with up to ``max_attempts`` tries, waiting ``backoff_seconds × 2^(try-1)`` (at most ``backoff_max_seconds``)
between them; a notice that still fails is dropped with a warning. Failures are logged with the
receiver's redacted address only (:func:`camwatch.alerts.messages.redact_url`), never a secret.
:meth:`Delivery.close` gives the queues ``drain_seconds`` to empty, then stops the threads (a notice still
waiting is lost with the process; the alert's state is in the database).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from camwatch.alerts.config import AlertSettings
from camwatch.alerts.messages import Notice
from camwatch.alerts.notifiers import Notifier

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    sent: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    last_latency_seconds: float | None = None  # queued → delivered, of the newest notice sent


class _Channel:
    def __init__(self, notifier: Notifier, settings: AlertSettings, stats: DeliveryStats,
                 on_result: Callable[[str, bool], None]) -> None:
        self.notifier = notifier
        self.settings = settings
        self.stats = stats
        self.on_result = on_result
        self.queue: queue.Queue[Notice] = queue.Queue(maxsize=settings.queue_size)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"camwatch-notify-{notifier.key}", daemon=True)
        self.thread.start()

    def put(self, notice: Notice) -> None:
        while True:
            try:
                self.queue.put_nowait(notice)
                return
            except queue.Full:
                try:
                    dropped = self.queue.get_nowait()
                    self.queue.task_done()
                    self.stats.dropped += 1
                    log.warning("notifier %s (%s): queue full; dropped the oldest notice (%s %s)",
                                self.notifier.key, self.notifier.where, dropped.rule, dropped.status)
                except queue.Empty:
                    continue

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                notice = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._deliver(notice)
            finally:
                self.queue.task_done()

    def _deliver(self, notice: Notice) -> None:
        s = self.settings
        for attempt in range(1, s.max_attempts + 1):
            try:
                self.notifier.send(notice)
            except Exception as exc:  # any receiver failure: logged (redacted) and retried with backoff
                self.stats.failed_attempts += 1
                self.on_result(self.notifier.key, False)
                delay = min(s.backoff_seconds * 2 ** (attempt - 1), s.backoff_max_seconds)
                last = attempt == s.max_attempts
                log.warning("notifier %s (%s): attempt %d of %d failed: %s%s", self.notifier.key,
                            self.notifier.where, attempt, s.max_attempts, exc,
                            "; notice dropped" if last else f"; retrying in {delay:g} s")
                if last or self.stop.wait(delay):
                    return
                continue
            self.stats.sent += 1
            self.stats.last_latency_seconds = time.monotonic() - notice.queued_at if notice.queued_at else None
            self.on_result(self.notifier.key, True)
            log.info("notifier %s (%s): sent %s %s (%s)", self.notifier.key, self.notifier.where, notice.rule,
                     notice.status, notice.subject.get("key"))
            return


class Delivery:
    """One channel per configured notifier; ``on_result(key, ok)`` is told of every attempt (metrics)."""

    def __init__(self, notifiers: list[Notifier], settings: AlertSettings,
                 on_result: Callable[[str, bool], None] = lambda _k, _ok: None) -> None:
        self.stats = DeliveryStats()
        self.channels = [_Channel(n, settings, self.stats, on_result) for n in notifiers]

    @property
    def configured(self) -> bool:
        return bool(self.channels)

    def submit(self, notice: Notice) -> None:
        for channel in self.channels:
            channel.put(notice)

    def close(self, drain_seconds: float = 5.0) -> None:
        deadline = time.monotonic() + drain_seconds
        for channel in self.channels:
            while channel.queue.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.05)
            channel.stop.set()
        for channel in self.channels:
            channel.thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
            if channel.queue.unfinished_tasks:
                log.warning("notifier %s (%s): %d notices not delivered at shutdown", channel.notifier.key,
                            channel.notifier.where, channel.queue.unfinished_tasks)
