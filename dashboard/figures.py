"""Plotly figures of the dashboard: pure functions from query results (DataFrames, arrays) to figures.

Reference bands are ``mean ± 3σ`` of the reference (population std, as stored in ``reference_stats``).
Heatmaps use the ``turbo`` colour scale, like the overlays drawn by :mod:`camwatch.imaging.render`.
Text from files and the database (class names, tag values, error reasons) goes through
:func:`dashboard.literal.plot_text`, so plotly shows it and never interprets it as HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.literal import plot_text

BAND_SIGMAS = 3.0
DRIFT_COLOUR = "#d62728"
OK_COLOUR = "#1f77b4"
BAND_COLOUR = "rgba(44, 160, 44, 0.15)"
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "template": "plotly_white"}


def band(mean: float | None, std: float | None) -> tuple[float, float] | None:
    """``(mean − 3σ, mean + 3σ)`` or None when the reference lacks the statistic."""
    if mean is None or std is None or not math.isfinite(mean) or not math.isfinite(std):
        return None
    return mean - BAND_SIGMAS * std, mean + BAND_SIGMAS * std


def statistic_grid(series: pd.DataFrame, statistics: Sequence[str], labels: Mapping[str, str],
                   bands: Mapping[str, tuple[float, float] | None], drifted: Mapping[str, bool],
                   columns: int = 2) -> go.Figure:
    """One small chart per statistic (mean per time bucket) with its reference band; titles of drifted
    statistics are red."""
    rows = max(1, math.ceil(len(statistics) / columns))
    titles = [labels.get(s, s) + (" — drifted" if drifted.get(s) else "") for s in statistics]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, vertical_spacing=0.3 / rows + 0.02,
                        horizontal_spacing=0.06)
    for i, name in enumerate(statistics):
        row, col = i // columns + 1, i % columns + 1
        fig.add_trace(go.Scatter(x=series["bucket"], y=series[name], mode="lines", name=labels.get(name, name),
                                 line={"color": DRIFT_COLOUR if drifted.get(name) else OK_COLOUR, "width": 1.5},
                                 showlegend=False), row=row, col=col)
        limits = bands.get(name)
        if limits is not None:
            fig.add_hrect(y0=limits[0], y1=limits[1], fillcolor=BAND_COLOUR, line_width=0, row=row, col=col)
    for annotation, name in zip(fig.layout.annotations, statistics, strict=False):
        if drifted.get(name):
            annotation.font = {"color": DRIFT_COLOUR}
    fig.update_layout(height=190 * rows + 40, **_LAYOUT)
    return fig


def statistic_series(series: pd.DataFrame, statistic: str, label: str,
                     limits: tuple[float, float] | None, reference_mean: float | None) -> go.Figure:
    """Mean of one statistic per time bucket with the reference band and mean."""
    fig = go.Figure(go.Scatter(x=series["bucket"], y=series[statistic], mode="lines+markers", name="mean",
                               customdata=series["images"], marker={"size": 4},
                               hovertemplate="%{x}<br>mean %{y:.4g}<br>%{customdata} images<extra></extra>"))
    if limits is not None:
        fig.add_hrect(y0=limits[0], y1=limits[1], fillcolor=BAND_COLOUR, line_width=0,
                      annotation_text="reference ± 3σ", annotation_position="top left")
    if reference_mean is not None:
        fig.add_hline(y=reference_mean, line_dash="dot", line_color="green")
    fig.update_layout(title=f"{label} over time", height=320, yaxis_title=label, **_LAYOUT)
    return fig


def drift_scores(history: pd.DataFrame, label: str) -> go.Figure:
    """Drift score per window against its threshold; drifted windows in red."""
    colours = [DRIFT_COLOUR if d else OK_COLOUR for d in history["drifted"]]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=history["window_start"], y=history["score"], mode="lines+markers", name="score",
                             marker={"color": colours, "size": 8}, line={"color": "#999999"},
                             customdata=np.stack([history["test"], history["n_current"]], axis=-1)
                             if len(history) else None,
                             hovertemplate="%{x}<br>%{customdata[0]} = %{y:.4g}<br>n = %{customdata[1]}"
                                           "<extra></extra>"))
    fig.add_trace(go.Scatter(x=history["window_start"], y=history["threshold"], mode="lines", name="threshold",
                             line={"dash": "dash", "color": DRIFT_COLOUR}))
    tests = ", ".join(sorted(set(history["test"]))) if len(history) else ""
    fig.update_layout(title=f"Drift of {label} per window ({tests})", height=300, **_LAYOUT)
    return fig


def class_mix(mix: pd.DataFrame, names: Sequence[str], top: int = 8) -> go.Figure:
    """Images per time bucket stacked by predicted class: the ``top`` most frequent classes, then "other"."""
    totals = mix.groupby("class_index")["images"].sum().sort_values(ascending=False)
    shown = totals.index[:top].tolist()
    frame = mix.assign(cls=[c if c in shown else -1 for c in mix["class_index"]])
    table = frame.pivot_table(index="bucket", columns="cls", values="images", aggfunc="sum", fill_value=0)
    fig = go.Figure()
    for cls in [*shown, -1]:
        if cls in table.columns:
            name = "other" if cls == -1 else plot_text(class_label(names, int(cls)))
            fig.add_trace(go.Bar(x=table.index, y=table[cls], name=name))
    fig.update_layout(barmode="stack", title="Predicted classes over time", height=320, **_LAYOUT)
    return fig


#: Labels of the drift results that are not per-image statistics of camwatch.statistics.registry.STATISTICS.
DRIFT_LABELS = {"attention_correlation": "Attention correlation", "heatmap_correlation": "Mean heatmap r",
                "predicted_class": "Class mix"}


def statistic_label(name: str) -> str:
    """Human label of a statistic or drift-tested quantity."""
    from camwatch.statistics.registry import STATISTICS

    return STATISTICS[name].label if name in STATISTICS else DRIFT_LABELS.get(name, name)


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
    fig.update_layout(title=plot_text(title), height=260, **_LAYOUT)
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
    fig.update_layout(height=170 * rows + 40, **_LAYOUT)
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
    fig.update_layout(title=f"{label} per slice (box 25–75%, whiskers 5–95%)", height=340, **_LAYOUT)
    return fig


def throughput(frame: pd.DataFrame) -> go.Figure:
    """Images finished per hour."""
    fig = go.Figure(go.Bar(x=frame["bucket"], y=frame["images"], marker_color=OK_COLOUR))
    fig.update_layout(title="Images processed per hour (last 24 h)", height=220, **_LAYOUT)
    return fig


def error_reasons(frame: pd.DataFrame) -> go.Figure:
    """Failed images per reason, largest first."""
    fig = go.Figure(go.Bar(x=frame["images"], y=[plot_text(r[:80]) for r in frame["reason"].astype(str)],
                           orientation="h",
                           marker_color=DRIFT_COLOUR))
    fig.update_layout(title="Errors by reason", height=80 + 28 * max(1, len(frame)),
                      yaxis={"autorange": "reversed"}, **_LAYOUT)
    return fig
