"""Recovery of workers that died: by per-process identity and heartbeat age, not by pid.

Every worker process has a random ``instance_id`` (its claims carry it in ``images.claimed_by``) and
writes a heartbeat every ``heartbeat_seconds``, also in the middle of a batch (:mod:`worker.service.lease`).
A worker whose heartbeat is older than ``dead_after_seconds`` and that did not say it stopped is dead (or
cut off): any other worker marks it stopped and ends its leases at once, so its images are retried now
instead of after ``lease_seconds`` (the interrupted attempt counts, see :mod:`db.claims`). Pids were the
old signal: they repeat across hosts and pid namespaces (containers), so they ended live workers' leases.

A worker restarted under the same ``worker_id`` waits until its predecessor's heartbeat is stale (at most
``dead_after_seconds``); if that heartbeat keeps advancing, another live process uses the id, and the
new one refuses to start.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine

from db import expire_claims, heartbeat_state, release_claims, retire_worker, silent_workers
from db.faults import DatabaseUnavailable, SqliteFileWatch, describe, retry
from db.types import utcnow

log = logging.getLogger(__name__)


def recover_silent_workers(engine: Engine, *, me: str, dead_after_seconds: float) -> int:
    """End the claims of every silent worker but ``me`` (an instance id); returns how many claims."""
    since = utcnow() - dt.timedelta(seconds=dead_after_seconds)
    total = 0
    for beat in silent_workers(engine, since):
        if beat.instance_id == me or not retire_worker(engine, beat.worker_id, beat.instance_id, since):
            continue
        claimant = beat.instance_id or beat.worker_id  # rows claimed before instance ids existed
        expired = expire_claims(engine, claimant)
        total += expired
        log.warning("worker %s (instance %s) has been silent since %s; marked stopped, %d of its claims "
                    "expired for retry", beat.worker_id, beat.instance_id, beat.last_seen_at.isoformat(), expired)
    return total


def wait_for_predecessor(engine: Engine, worker_id: str, *, me: str, heartbeat_seconds: float,
                         dead_after_seconds: float, sleep=time.sleep) -> None:  # type: ignore[no-untyped-def]
    """Return once no other live process reports as ``worker_id``; ValueError if one does."""
    first = heartbeat_state(engine, worker_id)
    if first is None or first.state == "stopped" or first.instance_id == me:
        return
    deadline = time.monotonic() + dead_after_seconds + heartbeat_seconds
    while True:
        beat = heartbeat_state(engine, worker_id)
        if beat is None or beat.state == "stopped" or beat.instance_id != first.instance_id:
            return
        if beat.last_seen_at > first.last_seen_at:
            raise ValueError(f"worker id {worker_id!r} is used by another running process (its heartbeat is "
                             "current): give each worker its own --worker-id")
        if utcnow() - beat.last_seen_at > dt.timedelta(seconds=dead_after_seconds) or time.monotonic() > deadline:
            return  # the predecessor is silent: recovery ends its claims
        log.info("worker id %s: waiting for the previous process's heartbeat to go stale (%.0f s at most)",
                 worker_id, dead_after_seconds)
        sleep(heartbeat_seconds)


def hand_back_claims(engine: Engine, claimant: str, *, clean: bool, solo: bool, watch: SqliteFileWatch,
                     last_beat: Callable[[], None], lease_seconds: float, dead_after_seconds: float) -> None:
    """Teardown of a worker's claims: released (``clean``; ``solo``: a batch of one) or their leases ended so
    that they are retried in smaller groups (after an unexpected error), then the last heartbeat. When the
    database does not answer (10 s of retries), the claims are left to lease expiry and recovery (logged)."""
    budget = 10.0
    try:
        watch.check()
        if clean:
            released = retry(lambda: release_claims(engine, claimant, solo=solo), what="releasing claims",
                             budget_seconds=budget)
            if released:
                log.info("released %d claimed images", released)
        else:
            ended = retry(lambda: expire_claims(engine, claimant), what="ending leases", budget_seconds=budget)
            if ended:
                log.warning("ended the leases of %d claimed images; they are retried in smaller groups", ended)
        retry(last_beat, what="writing the last heartbeat", budget_seconds=budget)
    except Exception as exc:  # the database is gone: nothing more can be done from here, and it is said
        log.error("could not release the claims (%s): they are retried when their lease ends (%.0f s) or when "
                  "another worker finds this one silent (%.0f s)",
                  exc if isinstance(exc, DatabaseUnavailable) else describe(exc), lease_seconds,
                  dead_after_seconds)
