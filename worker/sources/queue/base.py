"""What every queue source does, whatever the broker: receive events, check them, put their images on disk,
register them, and acknowledge each delivery once its image's result is committed.

One :meth:`QueueSource.pump` per worker loop iteration:

1. *acknowledge*: the deliveries whose image is settled ('ok' or 'error' committed, by this worker or any
   other) are acknowledged to the broker; spooled files are then removed unless ``queue.spool_keep`` keeps
   them;
2. *receive* at most ``queue.max_in_flight`` minus what is in flight (backpressure: a slow worker leaves
   the rest in the broker, where the backlog is visible); each delivery is parsed and validated
   (``camwatch.events``), its image materialised (:mod:`.intake`), and all of them registered in one
   transaction (:func:`db.events.register_events`);
3. a delivery that cannot be used (malformed JSON, schema violation, image refused, delivered more than
   ``queue.max_deliveries`` times) is *dead-lettered* with its reason and acknowledged, and the worker
   goes on.

A broker call that fails on the connection marks the source disconnected and is retried after an
exponential backoff (0.5 s doubling up to ``queue.reconnect_max_seconds``); what is in flight stays in
flight and is acknowledged after the reconnection. Every few seconds the source writes its state for the
Health page (:func:`db.queue_status.write_queue_status`).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Engine

from camwatch.events import EventError, ImageEvent, max_event_bytes, parse_event
from camwatch.settings import QueueSettings
from db import session_scope
from db.events import EventFound, EventOutcome, register_events, settled_images
from db.queue_status import QueueReport, write_queue_status
from db.types import utcnow
from worker.sources.folder import FileCandidate
from worker.sources.queue.intake import ImageFile, IntakeConfig, materialize
from worker.sources.queue.slots import Slot

log = logging.getLogger(__name__)

STATUS_SECONDS = 5.0
_T = TypeVar("_T")


class BrokerUnavailable(Exception):
    """The broker cannot be reached right now (the source backs off and retries)."""


@dataclass(frozen=True)
class Delivery:
    """One message as the broker handed it over: ``key`` acknowledges it; ``payload`` is the event (None
    with ``problem`` when the message holds no event); ``deliveries`` counts deliveries (1 when unknown)."""

    key: str
    payload: bytes | None
    deliveries: int = 1
    topic: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class InFlight:
    image_id: int
    event_id: str
    spool: Path | None  # the spooled file to remove after the acknowledgement (None: not ours)


class QueueSource:
    """Base of the queue sources (module docstring); subclasses implement the ``_broker_*`` methods."""

    kind: ClassVar[str]

    def __init__(self, *, name: str, display: str, consumer: str, queue: QueueSettings, intake: IntakeConfig,
                 class_names: Sequence[str] = ()) -> None:
        self.name = name
        self.root = intake.spool
        self.display = display
        self.consumer = consumer
        self.queue = queue
        self.intake = intake
        self.in_flight: dict[str, InFlight] = {}
        self.received = self.acknowledged = self.dead_lettered = self.duplicates = self.registered = 0
        self.connected = True
        self.last_error: str | None = None
        self._class_index = {n.lower(): i for i, n in enumerate(class_names)}
        self._rejects: list[tuple[Delivery, str, str | None]] = []  # dead letters the broker has not taken yet
        self._engine: Engine | None = None
        self._worker_id = ""
        self._backoff = 0.0
        self._retry_at = 0.0
        self._next_status = 0.0
        self._max_event = max_event_bytes(queue.max_inline_bytes)
        self.slot: Slot | None = None  # the consumer-name slot this source holds (released at close)

    # -- broker hooks --------------------------------------------------------------------------------
    def _broker_fetch(self, limit: int) -> list[Delivery]:
        raise NotImplementedError

    def _broker_ack(self, keys: list[str]) -> None:
        raise NotImplementedError

    def _broker_dead_letter(self, delivery: Delivery, reason: str, event_id: str | None) -> None:
        """Record the delivery and its reason where operators find it, then acknowledge it."""
        raise NotImplementedError

    def _broker_backlog(self) -> tuple[int | None, int | None, int | None]:
        """``(lag, pending, dead letters)`` as the broker reports them (None: unknown)."""
        raise NotImplementedError

    def _broker_upkeep(self) -> None:
        """Periodic broker work (Redis: keep in-flight entries claimed, take over abandoned ones, trim)."""

    def _broker_drained(self) -> bool:
        """Whether the broker has nothing more for this consumer right now (``--once`` stops then)."""
        raise NotImplementedError

    def _broker_close(self) -> None:
        raise NotImplementedError

    def _broker_connected(self) -> bool:
        """Whether the connection is up after a call that succeeded (Redis: a reply proves it)."""
        return True

    # -- the worker's side ---------------------------------------------------------------------------
    def attach(self, engine: Engine, worker_id: str, class_names: Sequence[str] = ()) -> None:
        """Give the source the database and the worker's id (at the worker's bootstrap)."""
        self._engine, self._worker_id = engine, worker_id
        if class_names:
            self._class_index = {n.lower(): i for i, n in enumerate(class_names)}

    def poll(self) -> list[FileCandidate]:
        """Queue sources have no files to scan: :meth:`pump` registers their events."""
        return []

    @property
    def waiting(self) -> int:
        """Deliveries in flight or to dead-letter, plus one while the broker may hold more (or is down)."""
        more = 1 if not self.connected or not self._broker_drained() else 0
        return len(self.in_flight) + len(self._rejects) + more

    def pump(self) -> int:
        """Acknowledge what is settled, then receive and register new events; returns the new images."""
        if self._engine is None:
            raise RuntimeError(f"{self.name}: pump() before attach()")
        self.acknowledge()
        if self._rejects:
            pending, self._rejects = self._rejects, []
            for delivery, reason, event_id in pending:
                self._reject(delivery, reason, event_id)
        self._call(self._broker_upkeep)
        free = self.queue.max_in_flight - len(self.in_flight)
        new = 0
        if free > 0:
            ok, deliveries = self._call(self._broker_fetch, free)
            if ok and deliveries:
                new = self._admit(deliveries)
        self.report()
        return new

    def acknowledge(self) -> int:
        """Acknowledge the in-flight deliveries whose image is settled; returns how many."""
        if not self.in_flight or self._engine is None:
            return 0
        settled = settled_images(self._engine, [f.image_id for f in self.in_flight.values()])
        keys = [k for k, f in self.in_flight.items() if f.image_id in settled]
        if not keys or not self._call(self._broker_ack, keys)[0]:
            return 0
        for key in keys:
            done = self.in_flight.pop(key)
            if done.spool is not None and self._drop_spooled(flagged=settled[done.image_id]):
                done.spool.unlink(missing_ok=True)
        self.acknowledged += len(keys)
        return len(keys)

    def _drop_spooled(self, *, flagged: bool) -> bool:
        keep = self.queue.spool_keep
        return keep == "none" or (keep == "flagged" and not flagged)

    def report(self, *, force: bool = False, state: str | None = None) -> None:
        """Write this consumer's state for the Health page (every :data:`STATUS_SECONDS`, or now)."""
        now = time.monotonic()
        if self._engine is None or (not force and now < self._next_status):
            return
        self._next_status = now + STATUS_SECONDS
        ok, backlog = self._call(self._broker_backlog)
        lag, pending, dead = backlog if ok and backlog is not None else (None, None, None)
        write_queue_status(self._engine, QueueReport(
            source=self.name, consumer=self.consumer, worker_id=self._worker_id, kind=self.kind,
            location=self.display, state=state or ("connected" if self.connected else "disconnected"),
            lag=lag, pending=pending, in_flight=len(self.in_flight), max_in_flight=self.queue.max_in_flight,
            dead_letters=dead, received=self.received, acknowledged=self.acknowledged,
            dead_lettered=self.dead_lettered, duplicates=self.duplicates, last_error=self.last_error))

    def close(self) -> None:
        """Acknowledge what is settled, report 'stopped', disconnect (idempotent)."""
        try:
            if self._engine is not None:
                self.acknowledge()
                self.report(force=True, state="stopped")
        except Exception:  # teardown goes on: unacknowledged deliveries come back after a restart
            log.exception("%s: final acknowledgement failed; the broker will redeliver", self.name)
        finally:
            self._engine = None
            try:
                self._broker_close()
            finally:
                if self.slot is not None:
                    self.slot.release()
                    self.slot = None

    # -- internals -----------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., _T], *args: Any) -> tuple[bool, _T | None]:
        """Run a broker call unless backing off: ``(True, result)``, or ``(False, None)`` when skipped or when it
        raised :class:`BrokerUnavailable` (then the source backs off)."""
        if time.monotonic() < self._retry_at:
            return False, None
        try:
            result = fn(*args)
        except BrokerUnavailable as exc:
            self._backoff = min(max(0.5, 2 * self._backoff), self.queue.reconnect_max_seconds)
            self._retry_at = time.monotonic() + self._backoff * random.uniform(0.8, 1.2)
            if self.connected or str(exc) != self.last_error:
                log.warning("%s: broker unavailable (%s); retrying with backoff (next in %.1f s)",
                            self.display, exc, self._backoff)
            self.connected, self.last_error = False, str(exc)
            return False, None
        if not self.connected and self._broker_connected():
            log.info("%s: broker reachable again", self.display)
            self.connected, self._backoff = True, 0.0
        return True, result

    def _reject(self, delivery: Delivery, reason: str, event_id: str | None) -> None:
        if not self._call(self._broker_dead_letter, delivery, reason, event_id)[0]:
            self._rejects.append((delivery, reason, event_id))
            return
        self.dead_lettered += 1
        log.warning("%s: event %s dead-lettered: %s", self.name, event_id or f"in {delivery.key}", reason,
                    extra={"event_id": event_id, "delivery": delivery.key})

    def _admit(self, deliveries: Sequence[Delivery]) -> int:
        """Check, materialise and register a batch of deliveries; returns the number of new images."""
        accepted: list[tuple[Delivery, ImageFile, ImageEvent]] = []
        for delivery in deliveries:
            if delivery.key in self.in_flight:  # the broker resent one we hold (MQTT, after a reconnection)
                continue
            self.received += 1
            if delivery.payload is None:
                self._reject(delivery, delivery.problem or "no event in the message", None)
                continue
            if delivery.deliveries > self.queue.max_deliveries:
                self._reject(delivery, f"delivered {delivery.deliveries} times (queue.max_deliveries "
                             f"{self.queue.max_deliveries}): the workers that took it stopped before finishing",
                             None)
                continue
            try:
                event = parse_event(delivery.payload, max_bytes=self._max_event)
                accepted.append((delivery, materialize(event, self.intake), event))
            except EventError as exc:
                self._reject(delivery, exc.reason, exc.event_id)
        if not accepted:
            return 0
        assert self._engine is not None
        received = utcnow()
        found = [self._found(d, image, event, received) for d, image, event in accepted]
        with session_scope(self._engine, write=True) as session:
            outcomes = register_events(session, found)
        new = 0
        for (delivery, image, event), outcome in zip(accepted, outcomes, strict=True):
            self.in_flight[delivery.key] = InFlight(outcome.image_id, event.id, image.path if image.spooled else None)
            if outcome.outcome is EventOutcome.NEW:
                new += 1
            else:
                self.duplicates += 1
                log.info("%s: event %s is a %s of image %d, recorded as a sighting", self.name, event.id,
                         "redelivery" if outcome.outcome is EventOutcome.REDELIVERED else "duplicate of the bytes",
                         outcome.image_id, extra={"event_id": event.id})
        self.registered += new
        return new

    def topic_tags(self, topic: str | None) -> dict[str, str]:
        """Tags from the delivery's topic (MQTT; see :class:`MqttSource`)."""
        return {}

    def _found(self, delivery: Delivery, image: ImageFile, event: ImageEvent, received: dt.datetime) -> EventFound:
        tags = {**self.topic_tags(delivery.topic), **event.tags}
        meta = {**event.metadata(), "tags": tags, "received_at": received.isoformat(),
                "delivery": {"broker": self.kind, "key": delivery.key, "topic": delivery.topic}}
        prediction = event.prediction or {}
        index = prediction.get("class_index")
        if index is None and isinstance(prediction.get("label"), str):
            index = self._class_index.get(prediction["label"].strip().lower())
        return EventFound(event_id=event.id, delivery=f"{self.kind}:{delivery.key}", uri=str(image.path),
                          sha256=image.sha256, size_bytes=image.size_bytes, mtime_ns=image.mtime_ns,
                          source=self.name, captured_at=event.time or received, meta=meta, label=event.label,
                          tags=tags, deployed_class_index=index, deployed_score=prediction.get("score"))
