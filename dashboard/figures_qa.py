"""Figures of the root-cause, bias and review views: the drift matrix, categorical mixes over time, effect
sizes per slice, rule precision with intervals. Pure functions from query results to plotly figures.

Drift matrix: one row per tested quantity, one column per window; a cell's colour is its **drift ratio**,
the test's strength over the strength of its threshold (:meth:`~camwatch.monitoring.drift.DriftTest.strength`:
``log10 p / log10 0.05`` for KS, ``score / threshold`` for distances, ``(1 − r) / (1 − r_min)`` for
correlations), so 1 is the threshold of every test alike: blue below, orange to red at and above (capped at
3), grey for windows with too little data; a dot marks a drifted result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from camwatch.monitoring.drift import DRIFT_TESTS
from dashboard.decisions import STATE_LABELS, state, why
from dashboard.figures import BUCKET_MS, DRIFT_COLOUR, LAYOUT, OK_COLOUR, TimeRange, time_axis
from dashboard.literal import plot_text

RATIO_CAP = 3.0
_RATIO_SCALE = [[0.0, "#f4f8fc"], [0.3333, "#9ecae1"], [0.3334, "#fdd49e"], [0.6, "#f16913"], [1.0, "#a50f15"]]


def drift_ratio(test_key: str, score: float | None, threshold: float | None) -> float:
    """The drift ratio of one result (module docstring); NaN when it was not tested."""
    test = DRIFT_TESTS.get(test_key)
    if test is None or score is None or threshold is None or score != score:
        return math.nan
    limit = test.strength(float(threshold))
    if limit <= 0:
        return math.nan
    return min(max(test.strength(float(score)) / limit, 0.0), RATIO_CAP)


def drift_matrix(results: pd.DataFrame, rows: Sequence[str], labels: Mapping[str, str], title: str,
                 groups: Mapping[str, str] | None = None) -> go.Figure:
    """Drift ratio per quantity (``rows``, top to bottom) and window; ``results`` has statistic,
    window_start, test, score, threshold, drifted (one test per quantity and window). ``groups`` names the
    group of each row (consecutive rows of a group are bracketed and named on the right)."""
    windows = sorted(results["window_start"].unique()) if len(results) else []
    position = {w: j for j, w in enumerate(windows)}
    z = np.full((len(rows), len(windows)), np.nan)
    text = np.full((len(rows), len(windows)), "", dtype=object)
    hover = np.full((len(rows), len(windows)), "not tested", dtype=object)
    index = {name: i for i, name in enumerate(rows)}
    for r in results.itertuples():
        i, j = index.get(r.statistic), position.get(r.window_start)
        if i is None or j is None:
            continue
        z[i, j] = drift_ratio(str(r.test), r.score, r.threshold)
        row = r._asdict()
        text[i, j] = "●" if state(row) == "drifted" else ""
        hover[i, j] = (f"{r.test} = {r.score:.3g} (threshold {r.threshold:g}): {STATE_LABELS[state(row)]}, {why(row)}"
                       if r.score == r.score and r.score is not None else "not enough data")
    fig = go.Figure(go.Heatmap(
        z=z, x=[pd.Timestamp(w) for w in windows], y=[labels.get(name, name) for name in rows], zmin=0,
        zmax=RATIO_CAP, colorscale=_RATIO_SCALE, text=text, texttemplate="%{text}", customdata=hover,
        hovertemplate="%{y}<br>%{x|%d %b %Y %H:%M}<br>%{customdata}<extra></extra>", xgap=1, ygap=1,
        colorbar={"title": {"text": "drift ratio<br>(1 = threshold)"}, "tickvals": [0, 1, 2, 3],
                  "ticktext": ["0", "1 threshold", "2", "≥ 3"]}))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(type="date", tickformat="%d %b")
    if groups:
        names = [groups.get(name, "") for name in rows]
        starts = [i for i, g in enumerate(names) if i == 0 or g != names[i - 1]]
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else len(rows)
            if start:
                fig.add_hline(y=start - 0.5, line_color="#333333", line_width=2)
            fig.add_annotation(x=1.0, xref="paper", xanchor="left", y=(start + end - 1) / 2, text=f" {names[start]}",
                               showarrow=False, font={"size": 12, "color": "#333333"}, textangle=0)
    fig.update_traces(colorbar={"x": 1.12})
    fig.update_layout(title=title, height=90 + 24 * len(rows), plot_bgcolor="#e8e8e8",
                      **{**LAYOUT, "margin": {"l": 10, "r": 90, "t": 40, "b": 10}})
    return fig


def category_mix(mix: pd.DataFrame, column: str, title: str, x_range: TimeRange, unit: str,
                 top: int = 8) -> go.Figure:
    """Images per time bucket stacked by the values of ``column`` (``bucket``, ``column``, ``images``)."""
    totals = mix.groupby(column)["images"].sum().sort_values(ascending=False)
    shown = [str(v) for v in totals.index[:top]]
    frame = mix.assign(value=[str(v) if str(v) in shown else "other" for v in mix[column]])
    table = frame.pivot_table(index="bucket", columns="value", values="images", aggfunc="sum", fill_value=0)
    fig = go.Figure()
    for value in [*shown, "other"]:
        if value in table.columns:
            fig.add_trace(go.Bar(x=table.index, y=table[value], name=plot_text(str(value)), width=0.9 * BUCKET_MS[unit]))
    time_axis(fig, x_range)
    fig.update_layout(barmode="stack", title=plot_text(title), height=260, showlegend=True, yaxis_title="images", **LAYOUT)
    return fig


def effect_sizes(table: pd.DataFrame, statistics: Sequence[str], labels: Mapping[str, str],
                 group_label: str) -> go.Figure:
    """Effect size (Cohen's d against the other slices) per slice (rows, in the table's order) and statistic
    (columns); ``*`` marks differences that survive the Benjamini–Hochberg control. ``table`` has ``group``
    and, per statistic ``s``, columns ``s:d`` and ``s:significant``."""
    z = np.array([[row.get(f"{s}:d", np.nan) for s in statistics] for _, row in table.iterrows()], dtype=float)
    text = [[("" if math.isnan(d) else f"{d:+.1f}" if math.isfinite(d) else ("+∞" if d > 0 else "−∞"))
             + ("*" if row.get(f"{s}:significant") else "") for s, d in zip(statistics, values, strict=True)]
            for (_, row), values in zip(table.iterrows(), z, strict=True)]
    fig = go.Figure(go.Heatmap(
        z=np.clip(z, -2, 2), x=[labels.get(s, s) for s in statistics], y=[plot_text(str(g)) for g in table["group"]],
        zmin=-2, zmax=2, colorscale="RdBu", reversescale=True, text=text, texttemplate="%{text}",
        textfont={"size": 11}, hovertemplate="%{y}<br>%{x}: d = %{text}<extra></extra>", xgap=1, ygap=1,
        colorbar={"title": {"text": "effect size d<br>(vs the rest)"}, "tickvals": [-2, -1, 0, 1, 2],
                  "ticktext": ["≤ −2", "−1", "0", "1", "≥ 2"]}))
    fig.update_yaxes(autorange="reversed", title=plot_text(group_label))
    fig.update_xaxes(tickangle=-35)
    fig.update_layout(title="How each slice differs from the others (* = significant after BH)",
                      height=max(300, 150 + 30 * len(table)), **LAYOUT)
    return fig


def precision_chart(table: pd.DataFrame) -> go.Figure:
    """Precision per rule (``rule``, ``precision``, ``low``, ``high``, ``reviewed``) with its interval."""
    shown = table[table["precision"].notna()]
    fig = go.Figure(go.Bar(
        x=[plot_text(str(r)) for r in shown["rule"]], y=shown["precision"], marker_color=[DRIFT_COLOUR if p < 0.5 else OK_COLOUR
                                                             for p in shown["precision"]],
        error_y={"type": "data", "symmetric": False, "array": shown["high"] - shown["precision"],
                 "arrayminus": shown["precision"] - shown["low"]},
        customdata=shown["reviewed"], hovertemplate="%{x}: %{y:.0%} of %{customdata} reviewed<extra></extra>"))
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", title="precision (95 % Wilson interval)")
    fig.update_layout(title="Share of flags reviewers confirmed", height=300, **LAYOUT)
    return fig
