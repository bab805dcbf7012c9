"""Login rate limiting: a client that keeps failing is locked out for a while, longer each time.

Per client address (``st.context.ip_address``; behind a reverse proxy every visitor shares the proxy's
address, so the limit then applies to all of them together) and, ten times more permissive, for all
clients together (guessing from many addresses). After ``max_failures`` failed attempts a key is locked
for ``lockout_seconds``, doubled at each further lockout up to :data:`MAX_LOCKOUT_SECONDS`; a success
clears the client's record; records idle for a day are forgotten. The limiter lives in the dashboard
process (``st.cache_resource``): a restart clears it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_LOCKOUT_SECONDS = 3600.0
FORGET_AFTER_SECONDS = 86400.0
GLOBAL_KEY = "*"
GLOBAL_FACTOR = 10


@dataclass
class _Record:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0
    last_seen: float = 0.0


class LoginLimiter:
    """Failed-login bookkeeping; thread-safe (Streamlit runs sessions in threads)."""

    def __init__(self, max_failures: int, lockout_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.lockout_seconds, self.clock = max_failures, lockout_seconds, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 when it may try now)."""
        now = self.clock()
        with self._lock:
            waits = [r.locked_until - now for key in (client, GLOBAL_KEY) if (r := self._records.get(key))]
        return max([0.0, *waits])

    def failed(self, client: str) -> float:
        """Count a failed attempt; returns the lockout it caused (0 if none)."""
        now = self.clock()
        with self._lock:
            self._forget_idle(now)
            caused = 0.0
            for key, allowed in ((client, self.max_failures), (GLOBAL_KEY, self.max_failures * GLOBAL_FACTOR)):
                record = self._records.setdefault(key, _Record())
                record.last_seen = now
                record.failures += 1
                if record.failures >= allowed:
                    record.lockouts += 1
                    record.failures = 0
                    lockout = min(MAX_LOCKOUT_SECONDS, self.lockout_seconds * 2 ** (record.lockouts - 1))
                    record.locked_until = now + lockout
                    caused = max(caused, lockout)
            return caused

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, r in self._records.items()
                    if now - r.last_seen > FORGET_AFTER_SECONDS and r.locked_until < now]:
            del self._records[key]
