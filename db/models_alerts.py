"""The ``alerts`` table (migration ``0008_alerts``): one row per episode of a rule's subject, firing until
the rule resolves it (:mod:`camwatch.alerts.state`); queries in :mod:`db.alerts`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from camwatch.conventions import ALERT_STATES
from db.models import Base, _one_of


class Alert(Base):
    """An alert episode: ``rule`` (a key of :data:`camwatch.alerts.rules.RULES`) about ``subject_key``
    (statistic, class_index, slice of drift; ``target``: a source or a worker), its latest value and
    threshold, a short human ``summary`` and ``links`` (name → dashboard URL). ``notified_at`` is when its
    'firing' notice went out (None: suppressed by cooldown or silence, or no receiver); acknowledging and
    silencing are the dashboard's (with audit events)."""

    __tablename__ = "alerts"
    __table_args__ = (
        _one_of("state", ALERT_STATES),
        Index("ix_alerts_rule_subject_key_id", "rule", "subject_key", "id"),
        Index("ix_alerts_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(32))
    subject_key: Mapped[str] = mapped_column(String(400))
    statistic: Mapped[str | None] = mapped_column(String(64))
    class_index: Mapped[int | None] = mapped_column(Integer)
    slice: Mapped[str] = mapped_column(String(200), default="", server_default="")
    target: Mapped[str | None] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    links: Mapped[dict[str, str] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    since: Mapped[dt.datetime | None]
    notified_at: Mapped[dt.datetime | None]
    resolved_notified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[dt.datetime | None]
    silenced_until: Mapped[dt.datetime | None]
