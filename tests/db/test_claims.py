"""Claims: exactly-once hand-out under concurrency, lease expiry, attempt cap, renew and release."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from db.claims import claim_batch, expire_claims, release_claims, renew_lease
from db.models import Image
from db.session import make_engine, session_scope, write_transaction
from db.types import utcnow
from tests.support.databases import migrated_engine

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def _add_pending(engine: Engine, n: int) -> list[int]:
    rows = [{"sha256": f"{i:064x}", "uri": f"/cam/{i:04d}.jpg", "source": "cam", "size_bytes": 1,
             "captured_at": T0 + dt.timedelta(seconds=i), "first_seen_at": T0, "status": "pending", "attempts": 0}
            for i in range(n)]
    with write_transaction(engine) as conn:
        conn.execute(insert(Image), rows)
        return list(conn.execute(select(Image.id).order_by(Image.id)).scalars())


def _expire(engine: Engine, ids: list[int]) -> None:
    with write_transaction(engine) as conn:
        conn.execute(update(Image).where(Image.id.in_(ids)).values(lease_until=utcnow() - dt.timedelta(seconds=1)))


def _row(engine: Engine, image_id: int) -> Image:
    with session_scope(engine) as s:
        image = s.get(Image, image_id)
        assert image is not None
        return image


def test_claim_marks_rows_processing_for_the_worker(engine: Engine) -> None:
    ids = _add_pending(engine, 5)
    before = utcnow()
    claimed = claim_batch(engine, "w1", limit=3, lease_seconds=60)
    assert [c.id for c in claimed] == ids[:3]
    assert claimed[0].uri == "/cam/0000.jpg" and claimed[0].sha256 == f"{0:064x}" and claimed[0].source == "cam"
    assert claimed[1].captured_at == T0 + dt.timedelta(seconds=1)
    row = _row(engine, ids[0])
    assert (row.status, row.claimed_by, row.attempts) == ("processing", "w1", 1)
    assert row.lease_until is not None and before + dt.timedelta(seconds=59) < row.lease_until
    assert [c.id for c in claim_batch(engine, "w2", limit=10, lease_seconds=60)] == ids[3:]
    assert claim_batch(engine, "w3", limit=10, lease_seconds=60) == []


def test_parallel_claimers_never_share_an_image_and_together_take_all(engine: Engine) -> None:
    ids = _add_pending(engine, 200)
    url = engine.url.render_as_string(hide_password=False)
    barrier = threading.Barrier(4)
    taken: dict[str, list[int]] = {f"w{k}": [] for k in range(4)}
    errors: list[BaseException] = []

    def work(worker_id: str) -> None:
        own = make_engine(url)  # separate pools, as separate worker processes would have
        try:
            barrier.wait()
            while batch := claim_batch(own, worker_id, limit=7, lease_seconds=300):
                taken[worker_id].extend(c.id for c in batch)
                # "Process" the batch: SQLite's lock is not fair, and a claimer looping without pause can
                # take every batch before the others' busy handlers wake up.
                time.sleep(0.005)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    every = [i for got in taken.values() for i in got]
    assert len(every) == len(set(every)) == 200
    assert set(every) == set(ids)
    assert sum(1 for got in taken.values() if got) >= 2  # the claimers really ran side by side
    with session_scope(engine) as s:
        holders = dict(s.execute(select(Image.id, Image.claimed_by)).all())
    assert all(holders[i] == w for w, got in taken.items() for i in got)


def test_expired_lease_is_reclaimed_and_unexpired_is_not(engine: Engine) -> None:
    ids = _add_pending(engine, 2)
    claim_batch(engine, "dead", limit=2, lease_seconds=60)
    assert claim_batch(engine, "w2", limit=10, lease_seconds=60) == []
    _expire(engine, [ids[0]])
    reclaimed = claim_batch(engine, "w2", limit=10, lease_seconds=60)
    assert [c.id for c in reclaimed] == [ids[0]]
    row = _row(engine, ids[0])
    assert (row.claimed_by, row.attempts) == ("w2", 2)
    assert _row(engine, ids[1]).claimed_by == "dead"


def test_attempts_cap_turns_a_repeatedly_abandoned_image_into_an_error(engine: Engine) -> None:
    (image_id,) = _add_pending(engine, 1)
    for attempt in range(1, 4):
        assert [c.id for c in claim_batch(engine, f"w{attempt}", limit=1, lease_seconds=60)] == [image_id]
        assert _row(engine, image_id).attempts == attempt
        _expire(engine, [image_id])
    assert claim_batch(engine, "w4", limit=1, lease_seconds=60) == []
    row = _row(engine, image_id)
    assert row.status == "error" and row.claimed_by is None and row.lease_until is None
    assert row.error == ("gave up: the worker process died 3 times while processing this image alone "
                         "(out of memory or a crash in native code?)")
    assert row.processed_at is not None


def test_attempts_cap_is_a_parameter(engine: Engine) -> None:
    (image_id,) = _add_pending(engine, 1)
    claim_batch(engine, "w1", limit=1, lease_seconds=60, max_attempts=1)
    _expire(engine, [image_id])
    assert claim_batch(engine, "w2", limit=1, lease_seconds=60, max_attempts=1) == []
    assert (_row(engine, image_id).error or "").startswith("gave up: the worker process died 1 times")


def test_renew_extends_only_own_claims(engine: Engine) -> None:
    ids = _add_pending(engine, 3)
    claim_batch(engine, "w1", limit=2, lease_seconds=10)
    claim_batch(engine, "w2", limit=1, lease_seconds=10)
    renewed = renew_lease(engine, "w1", ids, lease_seconds=3600)
    assert renewed == set(ids[:2])
    renewed_until, other_until = _row(engine, ids[0]).lease_until, _row(engine, ids[2]).lease_until
    assert renewed_until is not None and renewed_until > utcnow() + dt.timedelta(seconds=3000)
    assert other_until is not None and other_until < utcnow() + dt.timedelta(seconds=11)
    assert renew_lease(engine, "w1", [], lease_seconds=10) == set()


def test_renewal_racing_its_own_commit_is_quiet_but_a_takeover_is_reported(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    ids = _add_pending(engine, 2)
    claim_batch(engine, "w1", limit=2, lease_seconds=10)
    with write_transaction(engine) as conn:  # w1 committed ids[0]; ids[1] was taken over by w2
        conn.execute(update(Image).where(Image.id == ids[0]).values(status="ok"))
        conn.execute(update(Image).where(Image.id == ids[1]).values(claimed_by="w2"))
    with caplog.at_level("WARNING", logger="db.claims"):
        assert renew_lease(engine, "w1", ids, lease_seconds=60) == set()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"worker w1: lease of 1 images no longer held (ids [{ids[1]}])"]


def test_release_returns_own_claims_to_pending_without_counting_the_attempt(engine: Engine) -> None:
    ids = _add_pending(engine, 3)
    claim_batch(engine, "w1", limit=2, lease_seconds=60)
    claim_batch(engine, "w2", limit=1, lease_seconds=60)
    assert release_claims(engine, "w1") == 2
    first = _row(engine, ids[0])
    assert (first.status, first.claimed_by, first.lease_until, first.attempts) == ("pending", None, None, 0)
    assert _row(engine, ids[2]).status == "processing"
    assert [c.id for c in claim_batch(engine, "w3", limit=5, lease_seconds=60)] == ids[:2]
    assert release_claims(engine, "nobody") == 0


def test_claim_arguments_are_validated(engine: Engine) -> None:
    with pytest.raises(ValueError, match="limit must be positive"):
        claim_batch(engine, "w", limit=0, lease_seconds=60)
    with pytest.raises(ValueError, match="lease_seconds must be positive"):
        claim_batch(engine, "w", limit=1, lease_seconds=0)


def test_expire_claims_makes_a_dead_workers_rows_claimable_and_counts_the_attempt(engine: Engine) -> None:
    ids = _add_pending(engine, 3)
    claim_batch(engine, "dead", limit=2, lease_seconds=3600)
    claim_batch(engine, "alive", limit=1, lease_seconds=3600)
    assert expire_claims(engine, "dead") == 2
    reclaimed = claim_batch(engine, "w2", limit=5, lease_seconds=60)
    assert [c.id for c in reclaimed] == ids[:2]
    assert _row(engine, ids[0]).attempts == 2
    assert _row(engine, ids[2]).claimed_by == "alive"


# ------------------------------------------------------------ crashed work: halving groups, solo attempts


def test_crashed_work_is_retried_in_halving_groups_and_only_solo_crashes_count(engine: Engine) -> None:
    """A batch of 8 whose worker died: retried as 4, 2, 1; an image is given up only after crashing alone."""
    ids = _add_pending(engine, 8)
    killer = ids[5]

    def crash(batch: list) -> None:  # the worker dies with the batch in hand
        _expire(engine, [c.id for c in batch])

    sizes: list[int] = []
    for _ in range(30):
        batch = claim_batch(engine, "w", limit=8, lease_seconds=60, max_attempts=2)
        if not batch:
            break
        sizes.append(len(batch))
        if killer in [c.id for c in batch]:
            crash(batch)
        else:
            with write_transaction(engine) as conn:  # done: results written
                conn.execute(update(Image).where(Image.id.in_([c.id for c in batch]))
                             .values(status="ok", claimed_by=None, lease_until=None))
    rows = {i: _row(engine, i) for i in ids}
    # 8 crashed; halves of 4 (the killer's half crashed); its halves of 2 (one crashed); 1 + 1; the killer alone twice
    assert sizes == [8, 4, 4, 2, 2, 1, 1, 1]
    assert rows[killer].status == "error" and rows[killer].solo_attempts == 2
    assert all(rows[i].status == "ok" for i in ids if i != killer)  # no innocent image given up
    assert max(rows[i].solo_attempts for i in ids if i != killer) <= 1


def test_retry_group_size_halves_per_crash() -> None:
    from db.claims import retry_group_size

    assert [retry_group_size(16, c) for c in range(7)] == [16, 8, 4, 2, 1, 1, 1]
    assert retry_group_size(3, 1) == 1 and retry_group_size(1, 0) == 1


def test_expired_and_pending_work_are_never_mixed_and_claims_stay_in_their_sources(engine: Engine) -> None:
    ids = _add_pending(engine, 6)
    with write_transaction(engine) as conn:
        conn.execute(update(Image).where(Image.id.in_(ids[4:])).values(source="other"))
    first = claim_batch(engine, "w1", limit=2, lease_seconds=60, sources=["cam"])
    _expire(engine, [c.id for c in first])
    again = claim_batch(engine, "w2", limit=4, lease_seconds=60, sources=["cam"])
    assert [c.id for c in again] == ids[:2]  # the crashed pair alone (4 >> 1 = 2), no pending image added
    rest = claim_batch(engine, "w3", limit=10, lease_seconds=60, sources=["cam"])
    assert [c.id for c in rest] == ids[2:4]  # never the other source's images
    assert [c.id for c in claim_batch(engine, "w4", limit=10, lease_seconds=60, sources=["other"])] == ids[4:]


def test_release_gives_back_a_solo_attempt_but_not_an_ended_lease(engine: Engine) -> None:
    ids = _add_pending(engine, 2)
    claim_batch(engine, "w1", limit=1, lease_seconds=60)
    assert _row(engine, ids[0]).solo_attempts == 1
    assert release_claims(engine, "w1", solo=True) == 1
    assert (_row(engine, ids[0]).attempts, _row(engine, ids[0]).solo_attempts) == (0, 0)
    claim_batch(engine, "w2", limit=2, lease_seconds=60)
    assert expire_claims(engine, "w2") == 2
    assert release_claims(engine, "w2") == 0  # an ended lease keeps its counted attempt
