"""What the alert rules look at, as plain data read by :mod:`db.alert_facts` (no SQL, no torch here).

Times are timezone-aware UTC. Each rule of :mod:`camwatch.alerts.rules` reads only its own part.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DriftFact:
    """One stored drift test (a ``drift_results`` row, its existing columns only)."""

    statistic: str
    class_index: int
    slice: str
    test: str
    window_start: dt.datetime
    window_end: dt.datetime
    drifted: bool
    score: float | None
    threshold: float | None


@dataclass(frozen=True)
class DriftContext:
    """What a drift summary says about one (statistic, slice) in a window: the reference's and the window's
    mean of the statistic (None when it is not stored per image) and the share of the window's images
    flagged."""

    reference_mean: float | None
    current_mean: float | None
    flagged_share: float | None
    n_images: int


@dataclass(frozen=True)
class ShareFact:
    """Images of one slice ('' = every image) over the newest window of capture time."""

    slice: str
    start: dt.datetime
    end: dt.datetime
    done: int  # status ok or error
    ok: int
    errors: int
    flagged: int  # ok images with at least one flag


@dataclass(frozen=True)
class SourceFact:
    source: str
    last_image_at: dt.datetime  # newest registration (first_seen_at) of the source's images


@dataclass(frozen=True)
class HeartbeatFact:
    worker_id: str
    hostname: str
    state: str
    last_seen_at: dt.datetime


@dataclass
class AlertFacts:
    now: dt.datetime
    drift: list[DriftFact] = field(default_factory=list)
    #: By (statistic, slice, window_start): the summary's numbers (filled for drifted subjects only).
    drift_context: dict[tuple[str, str, dt.datetime], DriftContext] = field(default_factory=dict)
    shares: list[ShareFact] = field(default_factory=list)
    sources: list[SourceFact] = field(default_factory=list)
    heartbeats: list[HeartbeatFact] = field(default_factory=list)
