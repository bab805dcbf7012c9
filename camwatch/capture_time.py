"""Which capture time an image gets: the first *plausible* one of its sources.

Sources, in order: the sidecar's ``captured_at``, EXIF ``DateTimeOriginal``, the file's modification
time, and as the last resort the moment the worker processes it. A time is plausible when it lies in
``[EARLIEST, now + FUTURE_MARGIN]``: a camera whose clock battery died reports 0001-01-01 or 2000-01-01
after a reset, a typo gives 9999-12-31, and a year-9999 time would overflow every window computed after
it. An implausible time is skipped with a warning stored on the image, naming the source and the time.
Naive times are taken as UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

#: Capture times before this are implausible (no production camera predates it).
EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
#: Capture times more than this after the processing time are implausible (clock skew is smaller).
FUTURE_MARGIN = dt.timedelta(days=1)
#: The name of the last-resort source.
PROCESSING_TIME = "processing time"


def as_utc(moment: dt.datetime) -> dt.datetime | None:
    """``moment`` in UTC (naive = UTC), or None when the conversion leaves the years 1..9999."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return None


def plausible(moment: dt.datetime, now: dt.datetime) -> bool:
    """Whether ``moment`` lies in ``[EARLIEST, now + FUTURE_MARGIN]`` (naive = UTC)."""
    utc = as_utc(moment)
    return utc is not None and EARLIEST <= utc <= now + FUTURE_MARGIN


def from_mtime_ns(mtime_ns: int) -> dt.datetime | None:
    """A file modification time (ns since the epoch) as UTC, or None when it is not representable."""
    try:
        return dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def registration_time(mtime_ns: int, now: dt.datetime) -> dt.datetime:
    """The capture time a file is registered with before it is processed: its modification time when
    plausible, else ``now`` (processing chooses again with every source, :func:`choose_capture_time`)."""
    moment = from_mtime_ns(mtime_ns)
    return moment if moment is not None and plausible(moment, now) else now


def choose_capture_time(candidates: Sequence[tuple[str, dt.datetime | None]],
                        now: dt.datetime) -> tuple[dt.datetime, str, list[str]]:
    """``(time in UTC, its source, warnings)``: the first plausible candidate (``(source, time or None)``
    in priority order), else ``now`` from :data:`PROCESSING_TIME`. Each implausible candidate adds a
    warning; absent ones (None) are skipped silently."""
    warnings: list[str] = []
    for source, moment in candidates:
        if moment is None:
            continue
        if plausible(moment, now):
            utc = as_utc(moment)
            assert utc is not None  # plausible() converted it
            return utc, source, warnings
        warnings.append(f"capture time from the {source} ({_show(moment)}) is outside "
                        f"{EARLIEST:%Y-%m-%d} .. processing time + {FUTURE_MARGIN.days} day: not used")
    return now.astimezone(dt.UTC), PROCESSING_TIME, warnings


def _show(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")
