"""``redis://`` — a Redis stream read by a consumer group (``XREADGROUP``), one consumer per worker process.

- An entry carries the event JSON in its field ``event``. It is acknowledged (``XACK``) only once its
  image's result is committed (:mod:`.base`).
- The consumer is named ``<host>-<slot>`` (:mod:`.slots`; ``consumer=`` in the URL or ``worker_id`` fix it):
  on start the worker first re-reads its *own* pending entries (``XREADGROUP ... 0``), those a crash left
  unacknowledged, then new ones (``>``).
- Entries of other consumers idle for longer than ``queue.claim_timeout_seconds`` (default 300 s: above
  the slowest batch, or work still in progress would be redone) are taken over with ``XAUTOCLAIM``. To keep
  its own slow entries from looking abandoned, the consumer re-claims what it holds (``XCLAIM ... JUSTID``,
  which resets the idle time without counting a delivery) every third of the claim timeout.
- An entry delivered more than ``queue.max_deliveries`` times, or that cannot be used, goes to the
  dead-letter stream ``<stream>.dead`` (fields ``reason``, ``event`` when there was one, ``stream``,
  ``entry``, ``group``, ``consumer``, ``deliveries``, ``failed_at``) and is acknowledged, atomically
  (``MULTI``/``EXEC``). The dead-letter stream is bounded by ``queue.dead_letter_maxlen`` (``MAXLEN ~``).
- Producers bound the stream with ``XADD ... MAXLEN ~ queue.maxlen``; Redis 7 cannot trim only
  acknowledged entries, so with ``queue.trim_acknowledged`` the consumer also trims (``XTRIM MINID ~``)
  the entries that every consumer group of the stream has acknowledged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from camwatch.locations import RedisLocation
from db.types import utcnow
from worker.sources.queue.base import BrokerUnavailable, Delivery, QueueSource

log = logging.getLogger(__name__)

_UPKEEP_SECONDS_MAX = 30.0
_TRIM_SECONDS = 30.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamSource(QueueSource):
    kind = "redis"

    def __init__(self, location: RedisLocation, *, client: redis.Redis, **kwargs: Any) -> None:
        super().__init__(display=location.display, **kwargs)
        self.location = location
        self.redis = client
        self._history = True  # re-reading this consumer's own pending entries (after a restart)
        self._history_from = "0"
        self._more = True
        self._autoclaim_from = "0-0"
        now = time.monotonic()
        self._next_autoclaim = now
        self._next_renew = now + self._renew_every
        self._next_trim = now

    @property
    def _renew_every(self) -> float:
        return self.queue.claim_timeout_seconds / 3

    def _guard(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command; a lost connection becomes :class:`BrokerUnavailable`, a missing group is made."""
        try:
            try:
                return fn(*args, **kwargs)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.ensure_group()  # the stream or group vanished (a broker restarted without persistence)
                return fn(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from None

    def ensure_group(self) -> None:
        """Create the stream and the consumer group (reading from the stream's start) unless they exist."""
        try:
            self.redis.xgroup_create(self.location.stream, self.location.group, id="0", mkstream=True)
            log.info("%s: created consumer group %s", self.display, self.location.group)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- receiving -----------------------------------------------------------------------------------
    def _deliveries(self, entries: list[Any], counts: dict[str, int] | None = None) -> list[Delivery]:
        out = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            deliveries = (counts or {}).get(entry_id, 1)
            if fields is None:  # trimmed while pending
                out.append(Delivery(entry_id, None, deliveries, problem="entry was trimmed (MAXLEN) before "
                                    "it was processed: nothing left to read"))
            elif b"event" not in fields:
                names = sorted(_text(k) for k in fields)
                out.append(Delivery(entry_id, None, deliveries, problem=f"entry has no 'event' field (fields: {names})"))
            else:
                out.append(Delivery(entry_id, fields[b"event"], deliveries))
        return out

    def _counts(self, ids: list[str]) -> dict[str, int]:
        """Delivery counts of some pending entries (one ``XPENDING`` per id, pipelined)."""
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(self.location.stream, self.location.group, entry_id, entry_id, 1)
        counts = {}
        for rows in self._guard(pipe.execute):
            for row in rows:
                counts[_text(row["message_id"])] = int(row["times_delivered"])
        return counts

    def _broker_fetch(self, limit: int) -> list[Delivery]:
        stream, group = self.location.stream, self.location.group
        if self._history:
            reply = self._guard(self.redis.xreadgroup, group, self.consumer, {stream: self._history_from}, count=limit)
            entries = [e for e in (reply[0][1] if reply else []) if _text(e[0]) not in self.in_flight]
            if not reply or not reply[0][1]:
                self._history = False
                log.debug("%s: own pending entries done; reading new entries", self.display)
            else:
                self._history_from = _text(reply[0][1][-1][0])
                return self._deliveries(entries, self._counts([_text(e[0]) for e in entries]))
        reply = self._guard(self.redis.xreadgroup, group, self.consumer, {stream: ">"}, count=limit)
        entries = reply[0][1] if reply else []
        self._more = len(entries) >= limit
        return self._deliveries(entries)

    def _autoclaim(self) -> list[Delivery]:
        free = self.queue.max_in_flight - len(self.in_flight)
        if free <= 0:
            return []
        idle_ms = int(self.queue.claim_timeout_seconds * 1000)
        reply = self._guard(self.redis.xautoclaim, self.location.stream, self.location.group, self.consumer,
                            idle_ms, self._autoclaim_from, count=free)
        self._autoclaim_from = _text(reply[0])  # XAUTOCLAIM scans at most 10 x COUNT entries: go on from there
        claimed, deleted = reply[1], (reply[2] if len(reply) > 2 else [])
        if deleted:  # entries removed from the stream while pending: nothing left to process
            self._guard(self.redis.xack, self.location.stream, self.location.group, *deleted)
            log.warning("%s: %d pending entries were trimmed before anyone processed them (ids %s)",
                        self.display, len(deleted), [_text(d) for d in deleted][:10])
        if claimed:
            log.warning("%s: took over %d entries idle for more than %.0f s (their consumer stopped?)",
                        self.display, len(claimed), self.queue.claim_timeout_seconds)
        return self._deliveries(claimed, self._counts([_text(e[0]) for e in claimed]))

    def _broker_upkeep(self) -> None:
        now = time.monotonic()
        if self.in_flight and now >= self._next_renew:
            self._renew()
            self._next_renew = now + self._renew_every
        if now >= self._next_autoclaim:
            self._next_autoclaim = now + min(self.queue.claim_timeout_seconds / 4, _UPKEEP_SECONDS_MAX)
            taken = self._autoclaim()
            if taken:
                self._admit(taken)
        if self.queue.trim_acknowledged and now >= self._next_trim:
            self._next_trim = now + _TRIM_SECONDS
            self.trim_acknowledged()

    def _renew(self) -> None:
        """Reset the idle time of the entries this consumer still owns (``XCLAIM JUSTID`` counts no delivery);
        forget those another consumer took over meanwhile (that one acknowledges them now)."""
        held = sorted(self.in_flight, key=_id_key)
        stream, group = self.location.stream, self.location.group
        owned = {_text(row["message_id"]) for row in self._guard(
            self.redis.xpending_range, stream, group, held[0], held[-1], 2 * len(held) + 100,
            consumername=self.consumer)}
        lost = [k for k in held if k not in owned]
        for key in lost:
            self.in_flight.pop(key, None)
        if lost:
            log.warning("%s: %d entries were taken over by another consumer; it acknowledges them", self.display,
                        len(lost))
        keep = [k for k in held if k in owned]
        if keep:
            self._guard(self.redis.xclaim, stream, group, self.consumer, 0, keep, justid=True)

    def trim_acknowledged(self) -> int:
        """``XTRIM MINID ~`` below the oldest entry some group of the stream still needs; returns entries removed."""
        stream = self.location.stream
        floor: tuple[int, int] | None = None
        for group in self._guard(self.redis.xinfo_groups, stream):
            name, last = _text(group["name"]), _text(group["last-delivered-id"])
            needed = _next_id(last)
            if int(group["pending"]):
                oldest = _text(self._guard(self.redis.xpending, stream, name)["min"])
                needed = min(needed, oldest, key=_id_key)
            floor = _id_key(needed) if floor is None else min(floor, _id_key(needed))
        if floor is None or floor == (0, 1):
            return 0
        removed = int(self._guard(self.redis.xtrim, stream, minid=f"{floor[0]}-{floor[1]}", approximate=True))
        if removed:
            log.debug("%s: trimmed %d acknowledged entries", self.display, removed)
        return removed

    # -- acknowledging -------------------------------------------------------------------------------
    def _broker_ack(self, keys: list[str]) -> None:
        self._guard(self.redis.xack, self.location.stream, self.location.group, *keys)

    def _broker_dead_letter(self, delivery: Delivery, reason: str, event_id: str | None) -> None:
        fields: dict[Any, Any] = {"reason": reason, "stream": self.location.stream, "entry": delivery.key,
                                  "group": self.location.group, "consumer": self.consumer,
                                  "deliveries": delivery.deliveries, "failed_at": utcnow().isoformat()}
        if event_id is not None:
            fields["event_id"] = event_id
        if delivery.payload is not None:
            fields["event"] = delivery.payload
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.location.dead_letter_stream, fields, maxlen=self.queue.dead_letter_maxlen, approximate=True)
        pipe.xack(self.location.stream, self.location.group, delivery.key)
        self._guard(pipe.execute)

    # -- state ---------------------------------------------------------------------------------------
    def _broker_backlog(self) -> tuple[int | None, int | None, int | None]:
        groups = self._guard(self.redis.xinfo_groups, self.location.stream)
        mine = next((g for g in groups if _text(g["name"]) == self.location.group), None)
        dead = int(self._guard(self.redis.xlen, self.location.dead_letter_stream))
        if mine is None:
            return None, None, dead
        lag = mine.get("lag")
        return (None if lag is None else int(lag)), int(mine["pending"]), dead

    def _broker_drained(self) -> bool:
        return not self._history and not self._more

    def _broker_close(self) -> None:
        self.redis.close()
