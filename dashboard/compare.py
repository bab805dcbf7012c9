"""The Compare page's content, testable without Streamlit: two model versions on the images both processed
(definitions: :mod:`camwatch.monitoring.compare` and docs/metrics.md, "Model versions compared").

:func:`compare_view` runs through the dashboard's query cache (its module is in
``dashboard.state.QUERY_MODULES``), so the page re-draws without recomputing the correlations.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import Engine

from camwatch.monitoring.compare import agreement, attention_shift, moved_first, paired_difference
from dashboard.images import GALLERY_SIDE, Picture, render_overlay
from db.queries import ImageFilter
from db.queries_compare import COMPARED, compared_images
from db.queries_images import image_views

log = logging.getLogger(__name__)

DIFFERENCE_COLUMNS = ("statistic", "n", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "differs")


@dataclass(frozen=True)
class CompareView:
    """Everything the page shows: ``n`` images both versions processed (of a ``per_mille`` hash sample),
    the prediction ``agreement`` and mean attention shift, the paired differences (one row per statistic),
    the images by decreasing attention shift (``moved``: image_id, shift, class_a, class_b, slice) and one
    row per slice value (slice, images, agreement, mean_shift)."""

    n: int
    per_mille: int
    agreement: float
    mean_shift: float
    differences: pd.DataFrame
    moved: pd.DataFrame
    slices: pd.DataFrame


def _slice_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for value, group in frame.groupby(frame["slice"].fillna("(none)"), sort=True):
        shifts = group["shift"].to_numpy(dtype=float)
        rows.append({"slice": str(value), "images": len(group),
                     "agreement": agreement(group["class_a"].tolist(), group["class_b"].tolist()),
                     "mean_shift": float(np.nanmean(shifts)) if np.isfinite(shifts).any() else math.nan})
    return pd.DataFrame(rows, columns=["slice", "images", "agreement", "mean_shift"])


def compare_view(engine: Engine, a: int, b: int, f: ImageFilter, slice_key: str | None = None) -> CompareView:
    """Version ``b`` against version ``a`` on the images both processed, matching ``f`` (time range, tag)."""
    if a == b:
        raise ValueError("pick two different model versions to compare")
    frame, per_mille = compared_images(engine, a, b, f, slice_key)
    frame["shift"] = [attention_shift(x, y) for x, y in zip(frame["map_a"], frame["map_b"], strict=True)]
    differences = pd.DataFrame(
        [asdict(d) | {"differs": d.differs} for d in
         (paired_difference(name, frame[f"{name}_a"].tolist(), frame[f"{name}_b"].tolist()) for name in COMPARED)],
        columns=list(DIFFERENCE_COLUMNS))
    order = moved_first(frame["image_id"].tolist(), frame["shift"].tolist())
    moved = frame.set_index("image_id").loc[order, ["shift", "class_a", "class_b", "slice"]].reset_index()
    shifts = frame["shift"].to_numpy(dtype=float)
    return CompareView(
        n=len(frame), per_mille=per_mille,
        agreement=agreement(frame["class_a"].tolist(), frame["class_b"].tolist()),
        mean_shift=float(np.nanmean(shifts)) if np.isfinite(shifts).any() else math.nan,
        differences=differences, moved=moved, slices=_slice_rows(frame))


def pair_pictures(engine: Engine, image_ids: Sequence[int], roots: Sequence[Path], a: int, b: int,
                  side: int = GALLERY_SIDE) -> dict[int, tuple[Picture | None, Picture | None]]:
    """Side-by-side overlays: each image's primary heatmap of version ``a`` and of ``b`` on its picture
    (None for a map that is missing or cannot be drawn, logged)."""
    views = {version: image_views(engine, list(image_ids), version) for version in (a, b)}
    out: dict[int, tuple[Picture | None, Picture | None]] = {}
    for image_id in image_ids:
        pair: list[Picture | None] = []
        for version in (a, b):
            view = views[version].get(image_id)
            picture = None
            if view is not None and view.native is not None:
                try:
                    picture = render_overlay(view, roots, side=side, prefer_original=False)
                except Exception:  # one picture that cannot be drawn must not take the page down
                    log.exception("image %d: version %d's overlay cannot be drawn", image_id, version)
            pair.append(picture)
        out[int(image_id)] = (pair[0], pair[1])
    return out


def differences_figure(differences: pd.DataFrame) -> go.Figure:
    """The mean paired difference of each statistic with its 95 % interval, in the statistic's own units
    (most are shares or normalised coordinates in [0, 1]): one row per statistic, red where the interval
    excludes 0."""
    shown = differences.dropna(subset=["ci_low", "ci_high"])
    fig = go.Figure(go.Scatter(
        x=shown["mean_diff"], y=shown["statistic"], mode="markers",
        marker={"color": ["#d62728" if d else "#1f77b4" for d in shown["differs"]], "size": 9},
        error_x={"type": "data", "symmetric": False, "array": shown["ci_high"] - shown["mean_diff"],
                 "arrayminus": shown["mean_diff"] - shown["ci_low"]}))
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_layout(height=max(240, 22 * len(shown) + 80), margin={"l": 10, "r": 10, "t": 30, "b": 30},
                      xaxis_title="mean difference B − A (95 % t-interval)", yaxis={"autorange": "reversed"})
    return fig
