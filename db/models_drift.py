"""Incremental drift state on the shared :class:`db.models.Base` (``db/__init__`` imports this module):
``drift_state``, one row per reference and window kind, so that each drift pass (and the first pass after a
restart) recomputes only the windows holding images processed since the last one
(:mod:`db.drift_incremental`, :func:`worker.service.monitor.recompute_drift`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base
from db.types import utcnow


class DriftState(Base):
    """Where drift maintenance stands for one reference and window kind. ``watermark``: every image of the
    model version processed at or before it is in the stored results; ``reference_built_at`` and
    ``settings_key`` say what they were computed against (a rebuilt reference or changed drift settings
    mean a full recompute)."""

    __tablename__ = "drift_state"

    reference_id: Mapped[int] = mapped_column(ForeignKey("references.id", ondelete="CASCADE"), primary_key=True)
    window_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark: Mapped[dt.datetime | None]
    reference_built_at: Mapped[dt.datetime | None]
    settings_key: Mapped[str] = mapped_column(String(64))
    windows_last_pass: Mapped[int] = mapped_column(Integer, default=0)  # windows recomputed by the last pass
    passes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
