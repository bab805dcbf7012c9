"""Charts that read right: time axes over the selected range, bands of a window mean, drift strength up is
worse, the drift ratio, the default time range (expected values computed here, not by the figures)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from dashboard import figures
from dashboard.figures_qa import drift_ratio
from dashboard.widgets import default_range, x_range
from db.queries import ImageFilter

T = dt.datetime(2026, 11, 10, 14, 0, tzinfo=dt.UTC)


def test_one_hourly_bucket_is_drawn_on_a_day_long_axis() -> None:
    frame = pd.DataFrame({"bucket": [T], "images": [120]})
    fig = figures.throughput(frame, (T - dt.timedelta(hours=23), T + dt.timedelta(hours=1)))
    start, end = (pd.Timestamp(v) for v in fig.layout.xaxis.range)
    assert end - start == pd.Timedelta(hours=24)  # not a few milliseconds around the single bar
    assert fig.data[0].width == pytest.approx(0.9 * 3_600_000)
    assert fig.layout.xaxis.tickformatstops[0].value == "%H:%M:%S"  # never fractions of a second


def test_the_band_is_the_range_of_a_mean_of_n_reference_images() -> None:
    series = pd.DataFrame({"bucket": [T, T + dt.timedelta(days=1)], "images": [25, 400], "brightness": [103.0, 101.0]})
    fig = figures.statistic_series(series, "brightness", "Brightness", (100.0, 10.0), None)
    low, high = fig.data[0].y, fig.data[1].y
    assert low == pytest.approx([100 - 1.959964 * 10 / 5, 100 - 1.959964 * 10 / 20], rel=1e-6)
    assert high == pytest.approx([100 + 1.959964 * 10 / 5, 100 + 1.959964 * 10 / 20], rel=1e-6)
    assert fig.data[1].name == figures.BAND_LABEL
    # 103 lies inside 100 ± 3.92 (n = 25); 101 lies outside 100 ± 0.98 (n = 400)
    assert list(fig.data[2].marker.color) == [figures.OK_COLOUR, figures.DRIFT_COLOUR]


def test_drift_scores_point_up_when_drift_is_stronger() -> None:
    history = pd.DataFrame({"window_start": [T, T + dt.timedelta(days=1), T + dt.timedelta(days=2)],
                            "test": ["ks"] * 3, "score": [0.5, 1e-8, None], "threshold": [0.05] * 3,
                            "drifted": [False, True, False], "n_current": [100, 100, 4]})
    fig = figures.drift_scores(history, "Brightness", None)
    assert list(fig.data[0].y) == pytest.approx([-math.log10(0.5), 8.0, 0.0])
    assert fig.layout.shapes[0].y0 == pytest.approx(-math.log10(0.05))
    assert list(fig.data[0].marker.color) == [figures.OK_COLOUR, figures.DRIFT_COLOUR, figures.MUTED_COLOUR]


@pytest.mark.parametrize("test, score, threshold, expected", [
    ("ks", 0.05, 0.05, 1.0), ("ks", 0.0025, 0.05, 2.0), ("wasserstein", 0.05, 0.1, 0.5),
    ("heatmap_correlation", 0.7, 0.9, 3.0), ("psi", 10.0, 0.25, 3.0)])
def test_drift_ratio_puts_every_threshold_at_one(test: str, score: float, threshold: float, expected: float) -> None:
    assert drift_ratio(test, score, threshold) == pytest.approx(expected)
    assert np.isnan(drift_ratio(test, None, threshold))


def test_default_range_follows_the_data() -> None:
    assert default_range((T - dt.timedelta(days=14), T)) == "All time"
    assert default_range((T - dt.timedelta(days=45), T)) == "Last 30 days"
    assert default_range(None) == "All time"


def test_time_axes_round_the_range_outwards_to_whole_buckets() -> None:
    hours = x_range(ImageFilter(start=T + dt.timedelta(minutes=7), end=T + dt.timedelta(hours=2, minutes=1)))
    assert hours == (T, T + dt.timedelta(hours=3))
    days = x_range(ImageFilter(start=T - dt.timedelta(days=9), end=T))
    assert days == (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 11, tzinfo=dt.UTC))
