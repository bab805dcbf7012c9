"""Operational tables on the shared :class:`db.models.Base` (``db/__init__`` imports this module, so every
``db`` import registers them): ``worker_heartbeats`` (liveness and throughput of each worker process),
``audit_events`` (who changed what, from the dashboard or a command) and ``queue_status`` (the latest
state of each queue source as one of its consumers sees it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from camwatch.conventions import QUEUE_STATES, WORKER_STATES
from db.models import Base, _image_fk, _one_of
from db.types import utcnow


class WorkerHeartbeat(Base):
    """Liveness and throughput of one worker process."""

    __tablename__ = "worker_heartbeats"
    __table_args__ = (_one_of("state", WORKER_STATES),)

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # random per process start: claims carry it (images.claimed_by), recovery ends a silent one's claims
    instance_id: Mapped[str | None] = mapped_column(String(64), index=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(200))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    processed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    images_per_s: Mapped[float | None] = mapped_column(Float)


class AuditEvent(Base):
    """Who changed what from the dashboard (reviews, reference membership), shown on the Image page.

    ``actor`` is the authenticated identity (OIDC e-mail or name), ``"password login"`` for the shared
    password, or ``"local (no login)"``; ``client`` the address the request came from, when known."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_image_id_at", "image_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    client: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))  # a key of camwatch.conventions.AUDIT_ACTIONS
    image_id: Mapped[int | None] = mapped_column(_image_fk())
    reference_id: Mapped[int | None] = mapped_column(ForeignKey("references.id", ondelete="SET NULL"))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class QueueStatus(Base):
    """The latest state of one queue source as one of its consumers sees it (written every few seconds).

    ``lag``: entries not yet delivered to the consumer group (Redis; NULL when unknown, always for MQTT);
    ``pending``: delivered and not acknowledged, whole group (Redis) or this consumer (MQTT); ``in_flight``:
    received by this consumer and not yet acknowledged (at most ``max_in_flight``); ``dead_letters``: length
    of the dead-letter stream (Redis). Counters are since the worker started.
    """

    __tablename__ = "queue_status"
    __table_args__ = (_one_of("state", QUEUE_STATES),)

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(Text)  # password redacted
    state: Mapped[str] = mapped_column(String(16))
    lag: Mapped[int | None] = mapped_column(BigInteger)
    pending: Mapped[int | None] = mapped_column(BigInteger)
    in_flight: Mapped[int] = mapped_column(Integer)
    max_in_flight: Mapped[int] = mapped_column(Integer)
    dead_letters: Mapped[int | None] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    acknowledged: Mapped[int] = mapped_column(BigInteger, default=0)
    dead_lettered: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
