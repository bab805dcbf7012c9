"""The review loop's storage: the queue of unreviewed flagged images with short claims, verdicts, the
reviewed flags behind each rule's precision, and thresholds accepted from reviews.

Claims (table ``review_claims``, one row per image): a reviewing session (``holder``, a random token per
browser session) takes the next unreviewed flagged image by priority that nobody else holds; its hold ends
at ``expires_at`` unless renewed (the Review page renews it while it is open). Taking a claim is one write
transaction: on SQLite ``BEGIN IMMEDIATE`` serialises claimers; on PostgreSQL the claim is an
``INSERT ... ON CONFLICT (image_id) DO UPDATE ... WHERE the old hold expired or is ours``, which locks the
conflicting row and re-checks the condition on its newest version, so of two sessions racing for an image
exactly one gets it and the other moves to the next candidate. A session holds at most one image.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, delete, func, select, update
from sqlalchemy.engine import Connection

from camwatch.conventions import UNREVIEWED
from camwatch.monitoring.flags import FLAG_RULES
from db.audit import record_event
from db.models import Flag, Image, ImageTag, Review
from db.models_qa import ReviewClaim, ThresholdOverride
from db.queries import AnySelect, ImageFilter, apply_filter, tag_key_is
from db.queries_images import GalleryFilter, _gallery_statement
from db.session import dialect_insert, session_scope, write_transaction
from db.types import utcnow
from db.versions import flag_of, of_version
from db.writes import add_review

#: Queue orders: key -> label.
QUEUE_ORDERS: dict[str, str] = {"severity": "most severe first", "newest": "newest first"}
_CANDIDATES = 25  # images tried per claim attempt (others may be racing for the first ones)


@dataclass(frozen=True)
class QueueFilter:
    """Which flagged images the queue serves (capture time, class, one slice; one rule) and in which order."""

    images: ImageFilter = ImageFilter()
    rule: str | None = None
    order: str = "severity"


def _queue_statement(q: QueueFilter, holder: str, now: dt.datetime, skip: Sequence[int]) -> AnySelect:
    if q.order not in QUEUE_ORDERS:
        raise ValueError(f"unknown queue order {q.order!r}; expected one of {list(QUEUE_ORDERS)}")
    stmt = _gallery_statement(GalleryFilter(images=q.images, rule=q.rule, review=UNREVIEWED))
    held = select(ReviewClaim.image_id).where(ReviewClaim.expires_at > now, ReviewClaim.holder != holder)
    stmt = stmt.where(Image.id.not_in(held))
    if skip:
        stmt = stmt.where(Image.id.not_in(sorted(set(skip))))
    if q.order == "severity":
        return stmt.order_by(stmt.selected_columns.severity.desc().nulls_last(), Image.id.desc())
    return stmt.order_by(Image.captured_at.desc(), Image.id.desc())


def _take(conn: Connection, image_id: int, holder: str, reviewer: str, now: dt.datetime,
          expires: dt.datetime) -> bool:
    """Claim ``image_id`` unless another session holds it; True when this session holds it now."""
    stmt = dialect_insert(conn.dialect.name, ReviewClaim).values(
        image_id=image_id, holder=holder, reviewer=reviewer, claimed_at=now, expires_at=expires)
    stmt = stmt.on_conflict_do_update(
        index_elements=["image_id"],
        set_={"holder": stmt.excluded.holder, "reviewer": stmt.excluded.reviewer,
              "claimed_at": stmt.excluded.claimed_at, "expires_at": stmt.excluded.expires_at},
        where=(ReviewClaim.expires_at <= now) | (ReviewClaim.holder == holder))
    return conn.execute(stmt.returning(ReviewClaim.image_id)).scalar_one_or_none() is not None


def _reviewed(conn: Connection, image_id: int) -> bool:
    return conn.execute(select(Review.id).where(Review.image_id == image_id).limit(1)).first() is not None


@dataclass(frozen=True)
class Claimed:
    """The image a session holds (None: the queue is empty for it) and how many images wait in its queue,
    this one included."""

    image_id: int | None
    waiting: int


def claim_next(engine: Engine, *, holder: str, reviewer: str, queue: QueueFilter, ttl_seconds: float,
               current: int | None = None, skip: Sequence[int] = ()) -> Claimed:
    """Renew the hold on ``current`` if this session still holds it and it is still unreviewed; otherwise
    claim the first unreviewed flagged image of the queue that no other session holds (``skip``: images this
    session passed over). The session's other holds are released."""
    if not holder or not reviewer.strip():
        raise ValueError("a claim needs the session's holder token and the reviewer's name")
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl_seconds)
    with write_transaction(engine) as conn:
        chosen: int | None = None
        if current is not None and current not in skip:
            renewed = conn.execute(update(ReviewClaim).where(
                ReviewClaim.image_id == current, ReviewClaim.holder == holder, ReviewClaim.expires_at > now)
                .values(expires_at=expires, reviewer=reviewer)).rowcount
            if renewed and not _reviewed(conn, current):
                chosen = current
        rows = conn.execute(_queue_statement(queue, holder, now, skip).limit(_CANDIDATES)).all()
        waiting = int(rows[0].total) if rows else 0
        if chosen is None:
            chosen = next((int(r.image_id) for r in rows if _take(conn, int(r.image_id), holder, reviewer,
                                                                     now, expires)), None)
        conn.execute(delete(ReviewClaim).where(ReviewClaim.holder == holder,
                                               ReviewClaim.image_id != (chosen if chosen is not None else -1)))
    return Claimed(chosen, waiting)


def release_claims(engine: Engine, holder: str) -> int:
    """End every hold of a session (it leaves the page or skips); returns the number released."""
    with write_transaction(engine) as conn:
        return int(conn.execute(delete(ReviewClaim).where(ReviewClaim.holder == holder)).rowcount)


def active_claims(engine: Engine) -> pd.DataFrame:
    """Holds that have not expired: image_id, reviewer, claimed_at, expires_at (holder tokens stay private)."""
    stmt = (select(ReviewClaim.image_id, ReviewClaim.reviewer, ReviewClaim.claimed_at, ReviewClaim.expires_at)
            .where(ReviewClaim.expires_at > utcnow()).order_by(ReviewClaim.claimed_at))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def record_verdict(engine: Engine, *, image_id: int, verdict: str, reviewer: str | None, actor: str,
                   client: str | None, note: str | None = None, holder: str | None = None, label: str | None = None,
                   label_index: int | None = None) -> int:
    """Store a verdict (:func:`db.writes.add_review`), its audit event (``actor``: who the login says it is,
    not the typed reviewer name; :mod:`db.audit`) and end the session's hold on the image, in one
    transaction; returns the review id."""
    with session_scope(engine, write=True) as session:
        review_id = add_review(session, image_id, verdict, note, reviewer, label=label, label_index=label_index)
        record_event(session.connection(), actor=actor, client=client, action="review", image_id=image_id,
                     details={"review_id": int(review_id), "verdict": verdict,
                              **({"label": label} if label is not None else {})})
        if holder is not None:
            session.execute(delete(ReviewClaim).where(ReviewClaim.image_id == image_id, ReviewClaim.holder == holder))
    return review_id


def newest_flagged_image(engine: Engine, f: ImageFilter | None = None) -> int | None:
    """The most recently captured flagged image matching ``f`` (walks the capture-time index from the end
    until a flagged image: a few rows when a few percent of the images are flagged)."""
    f = f or ImageFilter()
    flagged = select(Flag.image_id).where(of_version(Flag.model_version_id, f.model_version_id))
    stmt = apply_filter(select(Image.id).where(Image.id.in_(flagged)), f, predictions_joined=False).order_by(Image.captured_at.desc(), Image.id.desc()).limit(1)
    with engine.connect() as conn:
        found = conn.execute(stmt).scalar_one_or_none()
    return None if found is None else int(found)


# ------------------------------------------------------------------------------------------- evidence


def reviewed_flags(engine: Engine, f: ImageFilter | None = None, tag_key: str | None = None) -> pd.DataFrame:
    """Every flag of every reviewed image matching ``f`` with the image's latest verdict: image_id, rule,
    value, threshold, verdict, and ``slice`` (the image's value of tag ``tag_key``; None without one)."""
    latest = (select(Review.image_id, func.max(Review.id).label("review_id")).group_by(Review.image_id)
              .subquery("latest_review"))
    columns: list[Any] = [Flag.image_id, Flag.rule, Flag.value, Flag.threshold, Review.verdict]
    stmt = (select(*columns).select_from(latest)
            .join(Review, Review.id == latest.c.review_id)
            .join(Flag, Flag.image_id == latest.c.image_id)
            .join(Image, flag_of((f or ImageFilter()).model_version_id)))
    if tag_key is not None:
        stmt = stmt.add_columns(ImageTag.value.label("slice")).outerjoin(
            ImageTag, and_(ImageTag.image_id == Image.id, tag_key_is(tag_key)))
    stmt = apply_filter(stmt, f or ImageFilter(), predictions_joined=False).order_by(Flag.image_id, Flag.rule)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if tag_key is None:
        frame["slice"] = pd.Series([None] * len(frame), dtype=object)
    return frame.astype({"value": "float64", "threshold": "float64"})


def flagged_per_rule(engine: Engine, f: ImageFilter | None = None) -> dict[str, int]:
    """Flagged images per rule among images matching ``f``."""
    f = f or ImageFilter()
    stmt = apply_filter(select(Flag.rule, func.count()).select_from(Flag).join(Image, flag_of(f.model_version_id)),
                        f, predictions_joined=False).group_by(Flag.rule)
    with engine.connect() as conn:
        return {str(rule): int(n) for rule, n in conn.execute(stmt)}


# ------------------------------------------------------------------------------------ accepted thresholds


@dataclass(frozen=True)
class Override:
    """A rule's threshold accepted from reviews."""

    rule: str
    setting: str
    value: float
    previous: float | None
    accepted_by: str
    accepted_at: dt.datetime
    note: str | None


def threshold_overrides(engine: Engine) -> dict[str, Override]:
    """Accepted thresholds by rule."""
    with engine.connect() as conn:
        rows = conn.execute(select(*ThresholdOverride.__table__.columns)).all()
    return {r.rule: Override(r.rule, r.setting, r.value, r.previous, r.accepted_by, r.accepted_at, r.note)
            for r in rows}


def accept_threshold(engine: Engine, *, rule: str, value: float, previous: float | None, actor: str,
                     evidence: dict[str, Any], note: str | None = None, client: str | None = None) -> None:
    """Make ``value`` the threshold of ``rule`` (the worker applies it from its next monitoring update) and
    record ``threshold.accept`` in the audit trail, in one transaction."""
    setting = FLAG_RULES[rule].setting if rule in FLAG_RULES else None
    if setting is None:
        raise ValueError(f"flag rule {rule!r} has no tunable threshold")
    if not math.isfinite(value):
        raise ValueError(f"flag rule {rule!r}: threshold must be a finite number, got {value!r}")
    now = utcnow()
    with write_transaction(engine) as conn:
        values = {"rule": rule, "setting": setting, "value": float(value), "previous": previous,
                  "accepted_by": actor, "accepted_at": now, "note": note}
        stmt = dialect_insert(conn.dialect.name, ThresholdOverride).values(**values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["rule"],
                                                set_={k: v for k, v in values.items() if k != "rule"}))
        record_event(conn, actor=actor, client=client, action="threshold.accept",
                     details={"subject": f"flags.{setting}", "rule": rule, "from": previous, "to": float(value),
                              "note": note, **evidence})


def revert_threshold(engine: Engine, *, rule: str, actor: str, restored: float | None, client: str | None = None) -> bool:
    """Drop the accepted threshold of ``rule`` (the settings' value applies again) and record
    ``threshold.revert``; False when there was none."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(ThresholdOverride.setting, ThresholdOverride.value)
                           .where(ThresholdOverride.rule == rule)).one_or_none()
        if row is None:
            return False
        conn.execute(delete(ThresholdOverride).where(ThresholdOverride.rule == rule))
        record_event(conn, actor=actor, client=client, action="threshold.revert",
                     details={"subject": f"flags.{row.setting}", "rule": rule, "from": row.value, "to": restored})
    return True
