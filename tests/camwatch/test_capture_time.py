"""Capture times: the first plausible source wins, implausible ones are named in warnings, nothing a file
holds can overflow (hypothesis over every datetime and zone), and windows over any capture times work."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from camwatch.capture_time import (
    EARLIEST,
    FUTURE_MARGIN,
    PROCESSING_TIME,
    choose_capture_time,
    from_mtime_ns,
    plausible,
    registration_time,
)
from camwatch.imaging.decode import parse_exif_time
from camwatch.monitoring.windows import FIRST, LAST, assign_windows

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
zones = st.one_of(st.none(), st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59),
                                           max_value=dt.timedelta(hours=23, minutes=59)).map(dt.timezone))
moments = st.builds(lambda d, z: d.replace(tzinfo=z), st.datetimes(), zones)


def _utc_seconds(moment: dt.datetime) -> float:
    """Seconds since 1970 in UTC, computed without datetime arithmetic (an independent oracle)."""
    naive = (moment.replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds()
    offset = moment.utcoffset() if moment.tzinfo is not None else None
    return naive - (offset.total_seconds() if offset else 0.0)


@given(st.lists(st.tuples(st.sampled_from(["sidecar", "EXIF", "mtime"]), st.one_of(st.none(), moments)),
                max_size=4))
def test_the_first_plausible_candidate_wins_and_every_skipped_one_is_named(candidates) -> None:  # type: ignore[no-untyped-def]
    chosen, source, warnings = choose_capture_time(candidates, NOW)
    lo, hi = _utc_seconds(EARLIEST), _utc_seconds(NOW + FUTURE_MARGIN)
    expected = next(((s, m) for s, m in candidates if m is not None and lo <= _utc_seconds(m) <= hi), None)
    if expected is None:
        assert (chosen, source) == (NOW, PROCESSING_TIME)
        skipped = [c for c in candidates if c[1] is not None]
    else:
        assert source == expected[0] and abs(_utc_seconds(chosen) - _utc_seconds(expected[1])) < 1e-3
        skipped = [c for c in candidates[:candidates.index(expected)] if c[1] is not None]
    assert chosen.tzinfo is not None and chosen.utcoffset() == dt.timedelta(0)
    assert len(warnings) == len(skipped) and all(s in w for (s, _), w in zip(skipped, warnings, strict=True))


def test_the_boundaries_and_the_dead_clock_battery() -> None:
    five = dt.timezone(dt.timedelta(hours=5))
    assert not plausible(dt.datetime(1, 1, 1, tzinfo=five), NOW)  # no OverflowError
    assert not plausible(dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(-dt.timedelta(hours=5))), NOW)
    assert plausible(EARLIEST, NOW) and not plausible(EARLIEST - dt.timedelta(microseconds=1), NOW)
    assert plausible(NOW + FUTURE_MARGIN, NOW) and not plausible(NOW + FUTURE_MARGIN + dt.timedelta(seconds=1), NOW)
    moment, source, warnings = choose_capture_time(
        [("sidecar", dt.datetime(1, 1, 1, tzinfo=five)), ("EXIF", None), ("file modification time", NOW)], NOW)
    assert (moment, source) == (NOW, "file modification time") and "0001-01-01" in warnings[0]


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_any_mtime_gives_a_registration_time_inside_the_plausible_range(mtime_ns: int) -> None:
    moment = registration_time(mtime_ns, NOW)
    assert plausible(moment, NOW)
    parsed = from_mtime_ns(mtime_ns)
    assert parsed is None or abs(_utc_seconds(parsed) - mtime_ns / 1e9) < 1e-3 or abs(mtime_ns) > 2**62


@given(st.one_of(st.text(max_size=30), st.binary(max_size=30), st.integers(), st.none(),
                 st.datetimes().map(lambda d: d.strftime("%Y:%m:%d %H:%M:%S"))),
       st.one_of(st.text(max_size=8), st.none(), st.binary(max_size=8),
                 st.from_regex(r"[+-][0-9]{2}:[0-9]{2}", fullmatch=True)))
def test_exif_time_parsing_never_raises(stamp: object, offset: object) -> None:
    moment, reason = parse_exif_time(stamp, offset)
    assert moment is None or (moment.utcoffset() == dt.timedelta(0) and 1 <= moment.year <= 9999)
    assert moment is None or reason is None


def test_exif_year_one_with_a_positive_offset_is_unusable_not_an_error() -> None:
    assert parse_exif_time("0001:01:01 00:00:00", "+05:00") == (
        None, "EXIF DateTimeOriginal lies outside the representable years once converted to UTC: ignored")
    assert parse_exif_time("2024:05:06 07:08:09", "+02:00")[0] == dt.datetime(2024, 5, 6, 5, 8, 9, tzinfo=dt.UTC)


@settings(max_examples=60, deadline=None)
@given(st.lists(moments, min_size=1, max_size=30), st.sampled_from(["hour", "day", "count"]))
def test_windows_over_any_capture_times_never_overflow(times: list[dt.datetime], kind: str) -> None:
    windows, labels = assign_windows(times, kind, 7)  # type: ignore[arg-type]
    assert labels.shape == (len(times),) and int(labels.max()) < len(windows)
    assert sum(w.n for w in windows) == len(times)
    for w in windows:
        assert FIRST <= w.start <= w.end <= LAST
    order = np.argsort([_utc_seconds(t) for t in times], kind="stable")
    assert list(np.asarray(labels)[order]) == sorted(np.asarray(labels)[order])  # windows follow time order


def test_the_last_day_of_year_9999_has_a_window_that_ends_at_the_last_moment() -> None:
    windows, _ = assign_windows([dt.datetime(9999, 12, 31, 12, tzinfo=dt.UTC), NOW], "day")
    assert windows[-1].start == dt.datetime(9999, 12, 31, tzinfo=dt.UTC) and windows[-1].end == LAST
