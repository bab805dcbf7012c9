"""Streams with and without a planted change, and how often drift decisions alarm on them (the proof of
calibrated drift decisions: :file:`benchmarks/drift_calibration.py`, ``tests/demo/test_drift_streams.py``;
figures in docs/metrics.md "Drift decisions").

A stream is a :func:`demo.synthetic.fill.fill_database` database: four cameras on two sites
(``site-0``: ``cam-00``, ``cam-02``; ``site-1``: ``cam-01``, ``cam-03``), day windows, the default
``first_n`` reference (the first 300 images). The *planted* stream's camera ``cam-03`` attends a watermark
from 60 % of the period on (its attention statistics, ``energy_outside`` first, move); the *no-change*
stream has no watermark. Nothing else changes in either.

Measures over the stored results (:func:`db.queries_drift.drift_decisions`):

* a **(window, slice) pair** is a day window and a slice (``''`` = all images, or a tag value such as
  ``camera=cam-03``) with at least one test run (not "not enough data"); it **alarms** when any of its
  results (any statistic, class or test) drifted;
* *before* (main's logic up to this change): the registered test's own decision (``raw_drifted``) with the
  class mix tested by ``jensen_shannon``; *after*: the calibrated ``drifted``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from camwatch.settings import Settings
from db.monitoring import ensure_reference
from db.queries_drift import drift_decisions
from db.session import make_engine
from demo.synthetic.fill import fill_database
from worker.service.monitor import drift_pass

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
PLANTED_SLICE = "camera=cam-03"
UNAFFECTED_SLICES = ("camera=cam-00", "camera=cam-01", "camera=cam-02", "site=site-0")


@dataclass(frozen=True)
class Stream:
    url: str
    planted: bool
    days: int
    change: dt.datetime | None  # when the planted camera's watermark starts


def build_stream(url: str, *, planted: bool, images: int, days: int, seed: int) -> Stream:
    """Fill the empty database at ``url`` (module docstring)."""
    fill_database(url, images, seed=seed, start=START, days=days, cameras=4, sites=2, shortcut=planted,
                  review_share=0.0)
    return Stream(url, planted, days, START + dt.timedelta(days=0.6 * days) if planted else None)


def decisions(engine: Engine, settings: Settings) -> pd.DataFrame:
    """Recompute every window with ``settings`` and return the stored results (``drift_decisions``)."""
    handle = ensure_reference(engine, settings.reference, 1, "gradcam")
    if handle is None:
        raise ValueError("the stream is too short for the reference")
    drift_pass(engine, settings, handle, 1, full=True)
    return drift_decisions(engine, handle.id, settings.drift.window_label)


def before_and_after(stream: Stream) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(before, after)`` result frames of a stream, each with an ``alarm`` column (module docstring)."""
    engine = make_engine(stream.url)
    try:
        legacy = Settings(drift={"tests": {"predicted_class": "jensen_shannon"}})  # type: ignore[arg-type]
        before = decisions(engine, legacy)
        before = before[before["test"] != "class_mix"].assign(alarm=lambda f: f["raw_drifted"].fillna(False))
        after = decisions(engine, Settings())
        after = after[after["test"] != "jensen_shannon"].assign(alarm=lambda f: f["drifted"].astype(bool))
        return before.reset_index(drop=True), after.reset_index(drop=True)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class AlarmShare:
    pairs: int
    alarmed: int

    @property
    def share(self) -> float:
        return self.alarmed / self.pairs if self.pairs else 0.0


def pair_alarms(results: pd.DataFrame) -> pd.Series:
    """Whether each tested (window_start, slice) pair alarmed."""
    tested = results[results["decision"] != "not_enough_data"]
    return tested.groupby(["window_start", "slice"])["alarm"].any()


def alarm_share(results: pd.DataFrame, *, exclude_statistics: tuple[str, ...] = (),
                slices: tuple[str, ...] | None = None, before: dt.datetime | None = None) -> AlarmShare:
    """Share of tested (window, slice) pairs with any alarm, optionally leaving statistics out, keeping
    only ``slices`` or only windows starting before ``before``."""
    frame = results[~results["statistic"].isin(exclude_statistics)]
    if slices is not None:
        frame = frame[frame["slice"].isin(slices)]
    if before is not None:
        frame = frame[pd.to_datetime(frame["window_start"], utc=True) < pd.Timestamp(before)]
    pairs = pair_alarms(frame)
    return AlarmShare(int(pairs.size), int(pairs.sum()))


def share_of_test(results: pd.DataFrame, test: str) -> AlarmShare:
    """Share of the tested results of one test key that alarmed."""
    frame = results[(results["test"] == test) & (results["decision"] != "not_enough_data")]
    return AlarmShare(len(frame), int(frame["alarm"].sum()))


def first_alarm(results: pd.DataFrame, slice_: str, statistic: str | None = None) -> dt.datetime | None:
    """Start of the first window whose ``slice_`` results (of ``statistic``, or any) alarmed."""
    frame = results[(results["slice"] == slice_) & results["alarm"]]
    if statistic is not None:
        frame = frame[frame["statistic"] == statistic]
    if frame.empty:
        return None
    return pd.to_datetime(frame["window_start"], utc=True).min().to_pydatetime()


def detection_delay(results: pd.DataFrame, change: dt.datetime, slice_: str = PLANTED_SLICE,
                    statistic: str | None = "energy_outside") -> int | None:
    """Full windows (days) between the change and the first alarm at or after it (0: the first full window
    after the change alarmed); None when it never alarms after the change."""
    frame = results[(results["slice"] == slice_) & results["alarm"]
                    & (pd.to_datetime(results["window_start"], utc=True) >= pd.Timestamp(change))]
    if statistic is not None:
        frame = frame[frame["statistic"] == statistic]
    if frame.empty:
        return None
    first = pd.to_datetime(frame["window_start"], utc=True).min()
    full_window = pd.Timestamp(change).ceil("D")
    return int((first - full_window) / pd.Timedelta(days=1))
