"""Exactly-once hand-out of pending images to workers, with leases.

A worker claims a batch: each row goes from 'pending' (or 'processing' with an expired lease -- a dead
worker's) to 'processing' with ``claimed_by = worker_id``, ``lease_until = now + lease_seconds`` and
``attempts + 1``, in one transaction:

- SQLite: the transaction starts with ``BEGIN IMMEDIATE``, so claimers are serialised by the database's
  write lock and the select-then-update cannot interleave (SQLAlchemy's SQLite dialect silently drops
  ``FOR UPDATE``, so it is not relied upon there).
- PostgreSQL: ``UPDATE images ... WHERE id IN (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING``;
  concurrent claimers skip each other's locked rows, and a row committed meanwhile is re-checked
  against the WHERE clause before it is locked.

``attempts`` counts claims that did not end in a result (a clean shutdown gives its attempt back), and
``solo_attempts`` those of the image alone. A worker that dies (SIGKILL, out of memory, a native crash)
leaves its whole batch with expired leases, and only one image may be to blame. So expired work is
retried in smaller groups, never mixed with new work: a row that crashed ``a`` times is re-claimed in a
group of at most ``batch >> a`` rows (16, 8, 4, 2, then 1), the rows of one crashed batch together. Only
crashes of an image claimed *alone* count against ``max_attempts``: such a row is then not handed out
again but becomes 'error' with the reason, and no innocent image of its batches is ever given up.

Workers claim only images of their own sources (``sources``): the image's file is read under a root the
worker knows. Leases use the workers' clocks: keep them NTP-synchronised and leases much longer than the
skew; a running worker renews its leases (:func:`renew_lease`) while a batch takes long.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, String, and_, case, cast, literal, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from db.models import Image
from db.records import ClaimedImage
from db.session import write_transaction
from db.types import utcnow

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3


def _lock_candidates(conn: Connection, query: Select[int]) -> Select[int]:
    """On PostgreSQL, lock the selected rows and skip rows another transaction holds."""
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def _mine(sources: Sequence[str] | None) -> ColumnElement[bool]:
    return true() if sources is None else Image.source.in_(list(sources))


def retry_group_size(batch_size: int, crashes: int) -> int:
    """How many expired rows that crashed ``crashes`` times are re-claimed together: ``batch >> crashes``,
    at least 1 (halving per crash isolates the one image that kills the worker in log2(batch) crashes)."""
    return max(1, batch_size >> max(0, crashes))


def _give_up(conn: Connection, now: dt.datetime, max_attempts: int, mine: ColumnElement[bool]) -> None:
    expired = and_(Image.status == "processing", Image.lease_until < now, Image.solo_attempts >= max_attempts,
                   mine)
    candidates = _lock_candidates(conn, select(Image.id).where(expired))
    reason = (literal("gave up: the worker process died ") + cast(Image.solo_attempts, String)
              + literal(" times while processing this image alone (out of memory or a crash in native code?)"))
    given_up = conn.execute(
        update(Image).where(Image.id.in_(candidates.scalar_subquery()))
        .values(status="error", error=reason, claimed_by=None, lease_until=None, processed_at=now)
        .returning(Image.id, Image.uri, Image.solo_attempts)
    ).all()
    for row in given_up:
        log.warning("image %d (%s): gave up after %d crashes of a worker processing it alone", row.id, row.uri,
                    row.solo_attempts)


def _take(conn: Connection, claimable: ColumnElement[bool], limit: int, worker_id: str,
          lease_until: dt.datetime) -> list[ClaimedImage]:
    """Claim up to ``limit`` rows matching ``claimable``, in ``(lease_until, id)`` order.

    For a fixed status that is the order of ``ix_images_status_lease_until_id``, so the database reads
    ``limit`` index entries instead of sorting the whole backlog (measured, a claim of 32 with 100k pending
    rows behind 100k finished ones: about 5 ms on SQLite and 15 ms on PostgreSQL, which took 90 ms when
    ``id`` was missing from the index and it had to sort). A claim of one row counts a solo attempt.
    """
    candidates = _lock_candidates(
        conn, select(Image.id).where(claimable).order_by(Image.lease_until, Image.id).limit(limit))
    ids = list(conn.execute(candidates).scalars())
    if not ids:
        return []
    rows = conn.execute(
        update(Image).where(Image.id.in_(ids))
        .values(status="processing", claimed_by=worker_id, lease_until=lease_until, attempts=Image.attempts + 1,
                solo_attempts=Image.solo_attempts + (1 if len(ids) == 1 else 0))
        .returning(Image.id, Image.uri, Image.sha256, Image.captured_at, Image.source)
    ).all()
    return [ClaimedImage(id=r.id, uri=r.uri, sha256=r.sha256, captured_at=r.captured_at, source=r.source)
            for r in rows]


def claim_batch(engine: Engine, worker_id: str, limit: int, lease_seconds: float,
                max_attempts: int = DEFAULT_MAX_ATTEMPTS, *,
                sources: Sequence[str] | None = None) -> list[ClaimedImage]:
    """Claim up to ``limit`` images for ``worker_id`` (of ``sources`` only, when given); returned sorted by
    id. See the module docstring.

    Expired claims (oldest lease first, in a retry group of :func:`retry_group_size`) are retried before
    pending images (oldest registration first); the two are never mixed in one batch.
    """
    if limit <= 0:
        raise ValueError(f"claim limit must be positive, got {limit}")
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
    if max_attempts <= 0:
        raise ValueError(f"max_attempts must be positive, got {max_attempts}")
    now = utcnow()
    lease_until = now + dt.timedelta(seconds=lease_seconds)
    mine = _mine(sources)
    with write_transaction(engine) as conn:
        _give_up(conn, now, max_attempts, mine)
        expired = and_(Image.status == "processing", Image.lease_until < now, mine)
        crashes = conn.execute(select(Image.attempts).where(expired).order_by(Image.lease_until, Image.id)
                               .limit(1)).scalar()
        claimed: list[ClaimedImage] = []
        if crashes is not None:
            claimed = _take(conn, expired, min(limit, retry_group_size(limit, int(crashes))), worker_id,
                            lease_until)
        if not claimed:
            claimed = _take(conn, and_(Image.status == "pending", mine), limit, worker_id, lease_until)
    claimed.sort(key=lambda c: c.id)
    if claimed:
        log.debug("worker %s claimed %d images (ids %d..%d)", worker_id, len(claimed), claimed[0].id,
                  claimed[-1].id)
    return claimed


def renew_lease(engine: Engine, worker_id: str, ids: Iterable[int], lease_seconds: float) -> set[int]:
    """Extend the lease of the given images still claimed by ``worker_id``; returns the ids renewed.

    An id missing from the result was finished (by this worker: its results were committed while the renewal
    was on its way, not worth a word) or taken over by another worker: drop its work (logged).
    """
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    lease_until = utcnow() + dt.timedelta(seconds=lease_seconds)
    with write_transaction(engine) as conn:
        renewed = set(conn.execute(
            update(Image)
            .where(Image.id.in_(wanted), Image.claimed_by == worker_id, Image.status == "processing")
            .values(lease_until=lease_until)
            .returning(Image.id)
        ).scalars())
        missing = sorted(set(wanted) - renewed)
        finished_here = set(conn.execute(select(Image.id).where(
            Image.id.in_(missing), Image.claimed_by == worker_id, Image.status.in_(("ok", "error")))).scalars()) \
            if missing else set()
    lost = set(missing) - finished_here
    if lost:
        log.warning("worker %s: lease of %d images no longer held (ids %s)", worker_id, len(lost), sorted(lost))
    return renewed


def release_claims(engine: Engine, worker_id: str, *, solo: bool = False) -> int:
    """Give back ``worker_id``'s unfinished claims at a clean shutdown; returns how many.

    The rows become 'pending' again and their interrupted attempt is not counted (``solo``: the claim was of
    one image, whose solo attempt is given back too). Claims whose lease already ended (:func:`expire_claims`
    after a failure) are left as they are: their attempt counts.
    """
    solo_attempts = Image.solo_attempts - 1 if solo else Image.solo_attempts
    now = utcnow()
    with write_transaction(engine) as conn:
        released = conn.execute(
            update(Image).where(Image.claimed_by == worker_id, Image.status == "processing",
                                Image.lease_until > now)
            .values(status="pending", claimed_by=None, lease_until=None, attempts=Image.attempts - 1,
                    solo_attempts=case((solo_attempts < 0, 0), else_=solo_attempts))
            .returning(Image.id)
        ).all()
    if released:
        log.info("worker %s released %d unfinished claims", worker_id, len(released))
    return len(released)


def expire_claims(engine: Engine, worker_id: str) -> int:
    """End the leases of a worker known to be dead (its process is gone), so its claims are retried now.

    Unlike :func:`release_claims`, the interrupted attempt counts against ``max_attempts`` (an image that
    kills the process cannot be retried forever): the rows stay 'processing' with an expired lease, so the
    next :func:`claim_batch` re-claims them or gives them up. Returns how many leases were ended.
    """
    now = utcnow()
    with write_transaction(engine) as conn:
        expired = conn.execute(
            update(Image)
            .where(Image.claimed_by == worker_id, Image.status == "processing", Image.lease_until > now)
            .values(lease_until=now)
            .returning(Image.id)
        ).all()
    if expired:
        log.info("worker %s: expired %d claims for retry", worker_id, len(expired))
    return len(expired)


def has_claimable_work(engine: Engine, sources: Sequence[str] | None = None) -> bool:
    """Whether any image (of ``sources``, when given) is still pending or being processed (by anyone)."""
    with engine.connect() as conn:
        return conn.execute(select(Image.id).where(Image.status.in_(("pending", "processing")), _mine(sources))
                            .limit(1)).first() is not None
