"""Plotly figures of the dashboard: pure functions from query results (DataFrames, arrays) to figures.

Bands (:func:`mean_band`): a chart of the mean of a statistic per time bucket draws, around the reference
mean, the 95 % range that the mean of ``n`` reference images would fall in (``mean ± 1.96 σ / √n``, σ the
reference's population std, ``n`` the images in that bucket): a bucket mean outside it is unlikely for
images like the reference, so the band narrows where buckets hold many images. Drift scores are drawn so
that up is worse (:meth:`camwatch.monitoring.drift.DriftTest.strength`). Time axes span the selected time
range whatever the data (:func:`time_axis`), so a single bucket is one bar in a day, not a chart of
milliseconds. Heatmaps use the ``turbo`` colour scale, like the overlays of :mod:`camwatch.imaging.render`.
Text from files and the database (class names, tag values, error reasons) goes through
:func:`dashboard.literal.plot_text`, so plotly shows it and never interprets it as HTML.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from camwatch.monitoring.drift import DRIFT_TESTS
from camwatch.monitoring.review import Z
from dashboard.decisions import STATE_LABELS, state, why
from dashboard.literal import plot_text

DRIFT_COLOUR = "#d62728"
OK_COLOUR = "#1f77b4"
MUTED_COLOUR = "#aaaaaa"
BAND_COLOUR = "rgba(44, 160, 44, 0.18)"
BAND_LABEL = "95 % range of a mean of that many reference images"
LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "template": "plotly_white"}
#: Date tick labels by tick spacing (ms): never fractions of a second for spans of hours or more.
TICK_FORMATS = [
    {"dtickrange": [None, 60_000], "value": "%H:%M:%S"},
    {"dtickrange": [60_000, 86_400_000], "value": "%H:%M<br>%d %b"},
    {"dtickrange": [86_400_000, "M1"], "value": "%d %b"},
    {"dtickrange": ["M1", "M12"], "value": "%b %Y"},
    {"dtickrange": ["M12", None], "value": "%Y"},
]
BUCKET_MS = {"hour": 3_600_000, "day": 86_400_000}

TimeRange = tuple[dt.datetime, dt.datetime] | None
Reference = tuple[float, float] | None  # (mean, population std) of a statistic over the reference


def time_axis(fig: go.Figure, x_range: TimeRange, **selector: object) -> None:
    """A date x axis spanning ``x_range`` (when given) with :data:`TICK_FORMATS`."""
    fig.update_xaxes(type="date", tickformatstops=TICK_FORMATS,
                     range=None if x_range is None else [x_range[0], x_range[1]], **selector)


def reference_of(mean: float | None, std: float | None) -> Reference:
    """``(mean, std)`` or None when the reference lacks the statistic."""
    if mean is None or std is None or not math.isfinite(mean) or not math.isfinite(std):
        return None
    return float(mean), float(std)


def mean_band(reference: Reference, n: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The 95 % range of a mean of ``n`` reference images, per bucket (module docstring)."""
    if reference is None:
        return None
    mean, std = reference
    half = Z * std / np.sqrt(np.maximum(np.asarray(n, dtype=np.float64), 1.0))
    return mean - half, mean + half


def _band_traces(x: pd.Series, band: tuple[np.ndarray, np.ndarray], show_legend: bool) -> list[go.Scatter]:
    low, high = band
    return [go.Scatter(x=x, y=low, mode="lines", line={"width": 0}, hoverinfo="skip", showlegend=False,
                       legendgroup="band"),
            go.Scatter(x=x, y=high, mode="lines", line={"width": 0}, fill="tonexty", fillcolor=BAND_COLOUR,
                       name=BAND_LABEL, hoverinfo="skip", showlegend=show_legend, legendgroup="band")]


def _outside(values: pd.Series, band: tuple[np.ndarray, np.ndarray] | None) -> list[str]:
    if band is None:
        return [OK_COLOUR] * len(values)
    return [DRIFT_COLOUR if v == v and not lo <= v <= hi else OK_COLOUR
            for v, lo, hi in zip(values, band[0], band[1], strict=True)]


def statistic_grid(series: pd.DataFrame, statistics: Sequence[str], labels: Mapping[str, str],
                   references: Mapping[str, Reference], drifted: Mapping[str, bool], x_range: TimeRange,
                   columns: int = 2) -> go.Figure:
    """One small chart per statistic (mean per time bucket, red where outside its band) with the band of
    :func:`mean_band`; titles of statistics whose latest window drifted are red."""
    rows = max(1, math.ceil(len(statistics) / columns))
    titles = [labels.get(s, s) + (" — drifted" if drifted.get(s) else "") for s in statistics]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, vertical_spacing=0.3 / rows + 0.02,
                        horizontal_spacing=0.06)
    for i, name in enumerate(statistics):
        row, col = i // columns + 1, i % columns + 1
        band = mean_band(references.get(name), series["images"]) if len(series) else None
        if band is not None:
            for trace in _band_traces(series["bucket"], band, show_legend=False):  # the caption explains it
                fig.add_trace(trace, row=row, col=col)
        fig.add_trace(go.Scatter(x=series["bucket"], y=series[name], mode="lines+markers", name=labels.get(name, name),
                                 line={"color": OK_COLOUR, "width": 1.5},
                                 marker={"size": 4, "color": _outside(series[name], band)},
                                 showlegend=False), row=row, col=col)
    for annotation, name in zip(fig.layout.annotations, statistics, strict=False):
        if drifted.get(name):
            annotation.font = {"color": DRIFT_COLOUR}
    time_axis(fig, x_range)
    fig.update_layout(height=190 * rows + 40, **LAYOUT)
    return fig


def statistic_series(series: pd.DataFrame, statistic: str, label: str, reference: Reference,
                     x_range: TimeRange, height: int = 320, title: str | None = None) -> go.Figure:
    """Mean of one statistic per time bucket, the reference mean and the band of :func:`mean_band`."""
    band = mean_band(reference, series["images"]) if len(series) else None
    fig = go.Figure()
    if band is not None:
        for trace in _band_traces(series["bucket"], band, show_legend=True):
            fig.add_trace(trace)
        fig.add_hline(y=reference[0], line_dash="dot", line_color="green",  # type: ignore[index]
                      annotation_text="reference mean", annotation_position="bottom left")
    fig.add_trace(go.Scatter(x=series["bucket"], y=series[statistic], mode="lines+markers", name="mean per bucket",
                             customdata=series["images"], line={"color": OK_COLOUR},
                             marker={"size": 5, "color": _outside(series[statistic], band)},
                             hovertemplate="%{x}<br>mean %{y:.4g}<br>%{customdata} images<extra></extra>"))
    time_axis(fig, x_range)
    fig.update_layout(title=title or f"{label} over time", height=height, yaxis_title=label,
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
                      **LAYOUT)
    return fig


def drift_scores(history: pd.DataFrame, label: str, x_range: TimeRange) -> go.Figure:
    """Drift strength per window, up is worse (``-log10 p`` for p-values, ``1 - r`` for correlations, the
    distance otherwise), with each test's threshold on the same scale; windows whose calibrated decision
    drifted red (the hover says why, :mod:`dashboard.decisions`), windows with too little data grey at 0."""
    fig = go.Figure()
    for test_key, rows in history.groupby("test", sort=True):
        test = DRIFT_TESTS.get(str(test_key))
        if test is None:
            continue
        tested = rows["score"].notna()
        y = [test.strength(float(s)) if ok else 0.0 for s, ok in zip(rows["score"], tested, strict=True)]
        colours = [DRIFT_COLOUR if state(r) == "drifted" else (OK_COLOUR if ok else MUTED_COLOUR)
                   for r, ok in zip(rows.to_dict("records"), tested, strict=True)]
        text = [f"{test.key} score {r['score']:.3g}: {STATE_LABELS[state(r)]}, {why(r)}" if ok else "not enough data"
                for r, ok in zip(rows.to_dict("records"), tested, strict=True)]
        fig.add_trace(go.Scatter(x=rows["window_start"], y=y, mode="lines+markers", name=f"{test.key}: "
                                 f"{test.strength_label}", marker={"color": colours, "size": 8},
                                 line={"color": "#999999"}, customdata=np.stack([text, rows["n_current"]], axis=-1),
                                 hovertemplate="%{x}<br>%{customdata[0]}<br>n = %{customdata[1]}<extra></extra>"))
        thresholds = rows["threshold"].dropna()
        if len(thresholds):
            level = test.strength(float(thresholds.iloc[-1]))
            fig.add_hline(y=level, line_dash="dash", line_color=DRIFT_COLOUR,
                          annotation_text=f"drift above ({test.key} threshold {thresholds.iloc[-1]:g})",
                          annotation_position="top left")
    time_axis(fig, x_range)
    fig.update_layout(title=f"Drift of {label} per window (higher = stronger drift)", height=300,
                      yaxis_title="drift strength", showlegend=True,
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
                      **LAYOUT)
    return fig


def class_mix(mix: pd.DataFrame, names: Sequence[str], x_range: TimeRange = None, unit: str = "day",
              top: int = 8) -> go.Figure:
    """Images per time bucket stacked by predicted class: the ``top`` most frequent classes, then "other"."""
    totals = mix.groupby("class_index")["images"].sum().sort_values(ascending=False)
    shown = totals.index[:top].tolist()
    frame = mix.assign(cls=[c if c in shown else -1 for c in mix["class_index"]])
    table = frame.pivot_table(index="bucket", columns="cls", values="images", aggfunc="sum", fill_value=0)
    fig = go.Figure()
    for cls in [*shown, -1]:
        if cls in table.columns:
            name = "other" if cls == -1 else plot_text(class_label(names, int(cls)))
            fig.add_trace(go.Bar(x=table.index, y=table[cls], name=name, width=0.9 * BUCKET_MS[unit]))
    time_axis(fig, x_range)
    fig.update_layout(barmode="stack", title="Predicted classes over time", height=320, **LAYOUT)
    return fig


#: Labels of the drift results that are not per-image statistics of camwatch.statistics.registry.STATISTICS.
DRIFT_LABELS = {"attention_correlation": "Attention correlation", "heatmap_correlation": "Mean heatmap r",
                "predicted_class": "Class mix"}


def statistic_label(name: str) -> str:
    """Human label of a statistic or drift-tested quantity."""
    from camwatch.statistics.registry import CATEGORIES, STATISTICS

    if name in STATISTICS:
        return STATISTICS[name].label
    return CATEGORIES[name].label if name in CATEGORIES else DRIFT_LABELS.get(name, name)


def number(value: float | None, spec: str = ".3g") -> str:
    """A value for display; "–" for a missing or NaN one."""
    return "–" if value is None or value != value else format(value, spec)


def class_label(names: Sequence[str], index: int) -> str:
    """``"3 · hard hat"``, or ``"3"`` when the model has no such class name."""
    return f"{index} · {names[index]}" if 0 <= index < len(names) else str(index)


def heatmap_pair(reference: np.ndarray | None, current: np.ndarray | None, title: str) -> go.Figure:
    """Reference mean map next to the current one (same colour scale, rows top to bottom)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("reference", "current window"), horizontal_spacing=0.05)
    top = max(float(np.max(m)) for m in (reference, current) if m is not None) \
        if reference is not None or current is not None else 1.0
    for col, data in ((1, reference), (2, current)):
        if data is not None:
            fig.add_trace(go.Heatmap(z=data, colorscale="Turbo", zmin=0, zmax=top, showscale=col == 2),
                          row=1, col=col)
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title=plot_text(title), height=260, **LAYOUT)
    return fig


def heatmap_grid(maps: Mapping[str, np.ndarray], columns: int = 4) -> go.Figure:
    """Small mean heatmaps, one per label, each on its own colour scale."""
    labels = list(maps)
    rows = max(1, math.ceil(len(labels) / columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[plot_text(v) for v in labels],
                        horizontal_spacing=0.03,
                        vertical_spacing=0.12 / rows + 0.03)
    for i, label in enumerate(labels):
        fig.add_trace(go.Heatmap(z=maps[label], colorscale="Turbo", showscale=False, name=plot_text(label)),
                      row=i // columns + 1, col=i % columns + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=170 * rows + 40, **LAYOUT)
    return fig


def slice_boxes(table: pd.DataFrame, label: str) -> go.Figure:
    """Box per tag value from precomputed quantiles (whiskers = 5th and 95th percentiles); red boxes drifted
    from the reference."""
    fig = go.Figure()
    for row in table.itertuples():
        if row.median is None or pd.isna(row.median):
            continue
        fig.add_trace(go.Box(name=plot_text(row.value), x=[plot_text(row.value)], q1=[row.q25], median=[row.median], q3=[row.q75],
                             lowerfence=[row.q05], upperfence=[row.q95], mean=[row.mean], boxmean=True,
                             marker_color=DRIFT_COLOUR if row.ref_drifted is True else OK_COLOUR,
                             showlegend=False))
    fig.update_layout(title=f"{label} per slice (box 25–75%, whiskers 5–95%)", height=340, **LAYOUT)
    return fig


def throughput(frame: pd.DataFrame, x_range: TimeRange) -> go.Figure:
    """Images finished per hour (bars one hour wide) over ``x_range``."""
    fig = go.Figure(go.Bar(x=[b + dt.timedelta(minutes=30) for b in frame["bucket"]], y=frame["images"],
                           width=0.9 * BUCKET_MS["hour"], marker_color=OK_COLOUR,
                           hovertemplate="%{x|%d %b %H:00}–+1 h<br>%{y} images<extra></extra>"))
    time_axis(fig, x_range)
    fig.update_layout(title="Images processed per hour (last 24 h)", height=220, yaxis_title="images", **LAYOUT)
    return fig


def error_reasons(frame: pd.DataFrame) -> go.Figure:
    """Failed images per reason, largest first."""
    fig = go.Figure(go.Bar(x=frame["images"], y=[plot_text(r[:80]) for r in frame["reason"].astype(str)],
                           orientation="h",
                           marker_color=DRIFT_COLOUR))
    fig.update_layout(title="Errors by reason", height=80 + 28 * max(1, len(frame)),
                      yaxis={"autorange": "reversed"}, **LAYOUT)
    return fig
