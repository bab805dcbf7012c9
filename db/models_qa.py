"""Tables of the QA workflow and of retention (revision ``0006_qa_workflow``), on the shared
:class:`db.models.Base` (``db/__init__`` imports this module, so every ``db`` import registers them).

- ``review_claims``: a reviewer's short hold on a flagged image (one row per image; ``holder`` is the
  reviewing session, ``expires_at`` ends the hold unless renewed);
- ``threshold_overrides``: flag thresholds accepted from reviews, which replace the settings' value in the
  worker (``rule`` is a flag rule key, ``setting`` the :class:`~camwatch.monitoring.flags.FlagConfig` field);
- ``maintenance_runs``: when each periodic task (``prune``) last ran, so a daily task stays daily across
  worker restarts and several workers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base
from db.types import utcnow


class ReviewClaim(Base):
    """A reviewer's hold on an image; expired rows may be taken over by another reviewer."""

    __tablename__ = "review_claims"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), index=True)  # the reviewing session's random token
    reviewer: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class ThresholdOverride(Base):
    """A flag rule's threshold accepted from reviews; the worker applies it over the settings."""

    __tablename__ = "threshold_overrides"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    setting: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    previous: Mapped[float | None] = mapped_column(Float)
    accepted_by: Mapped[str] = mapped_column(String(200))
    accepted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


class MaintenanceRun(Base):
    """The last run of a periodic task; ``detail`` holds its summary (rows deleted, bytes reclaimed...)."""

    __tablename__ = "maintenance_runs"

    task: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    runner: Mapped[str] = mapped_column(String(200))
    runs: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
