"""Slices: which value of a tag (camera, site...) differs most, on every statistic at once (the bias view),
then one statistic per value in detail, each value tested against the rest and against the reference.

A shortcut shows up here: one camera whose heatmaps sit on a watermark has its own distribution of
border energy and centroid, a high flagged share, a drifted test and a mean heatmap unlike the others; its
image properties (brightness...) in the same table say whether its pictures changed too."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from camwatch.statistics.registry import IMAGE_KEYS, STATISTICS
from dashboard import figures, figures_qa
from dashboard.analysis import slice_analysis
from dashboard.bias import Q, slice_bias
from dashboard.literal import md
from dashboard.state import config, query
from dashboard.widgets import (
    class_picker,
    names,
    options_or_stop,
    param_index,
    require_data,
    selected_version,
    time_filter,
    with_filters,
)
from db.queries import STATISTIC_NAMES, current_reference
from db.queries_slices import slice_summary, tag_keys

SCORE_HELP = ("ks: p-value, drifts below 0.05; wasserstein: W1 / std of the comparison sample, drifts above "
              "0.1. One odd slice makes every other slice differ from 'the rest' too: the reference test marks it.")


def _interval(mean: float, low: float, high: float, spec: str = ".3g") -> str:
    return "–" if mean != mean else f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


st.title("Slices")
require_data()
settings = config().settings
keys = list(options_or_stop(query(tag_keys), "No tags stored yet: the worker tags images from their folders "
                                        "(`path_tags`, e.g. site/camera) and from sidecar files."))
c1, c2, c3 = st.columns([2, 2, 1])
with c1:
    key: str = st.selectbox("Tag", keys, index=param_index("tag", keys, keys.index("camera") if "camera" in keys else 0),
                            key="slices_tag")
with c2:
    class_index = class_picker("Class", key="slices_class")
with c3:
    by_class = st.toggle("Tag × class", key="slices_by_class",
                         help="Split every tag value by predicted class (e.g. cam-2 × dog)")
f = with_filters(time_filter(), class_index=class_index, tag=(None, None))
summary = query(slice_summary, key, f)
if len(summary) == 0:
    st.info("No processed image with this tag in the selected range.")
    st.stop()
class_names = names()

# ------------------------------------------------------------------------------------------- bias view
statistics = [s for s in settings.drift.statistics if s in STATISTICS]
statistics = [s for s in statistics if s not in IMAGE_KEYS and STATISTICS[s].source == "heatmap"] + \
             [s for s in statistics if s in IMAGE_KEYS] + [s for s in statistics if STATISTICS[s].source == "engine"]
view, per_mille = query(slice_bias, key, statistics, f, int(summary["images"].sum()), by_class, class_names)
st.subheader("Which slice differs most")
table = view.table
if len(table) == 0:
    st.info("Too few images per slice in the selected range to compare them (10 per slice at least).")
else:
    top = table.iloc[0]
    if top["disparity"] > 0:
        name = str(top["top_statistic"])
        st.markdown(f"**{md(str(top['group']))}** differs most: {figures.statistic_label(name)} "
                    f"d = {top[f'{name}:d']:+.2f} against the other slices (mean "
                    f"{_interval(top[f'{name}:mean'], top[f'{name}:low'], top[f'{name}:high'])}, adjusted p = "
                    f"{top[f'{name}:p_adj']:.2g}).")
    else:
        st.markdown("No slice's attention differs significantly from the others' after the multiple-testing control.")
    labels = {s: figures.statistic_label(s) for s in statistics}
    st.plotly_chart(figures_qa.effect_sizes(table, statistics, labels, key + (" × class" if by_class else "")),
                    key="slice_effects")
    flagged = dict(zip(summary["value"], summary["flagged"] / summary["images"].where(summary["images"] > 0),
                       strict=True))
    rows = pd.DataFrame({
        "slice": table["group"], "sampled": table["n"],
        "flagged share": [flagged.get(v, math.nan) if not by_class else math.nan for v in table["value"]],
        "accuracy [95 % CI]": [_interval(a, lo, hi, ".0%") for a, lo, hi in
                               zip(table["accuracy"], table["acc_low"], table["acc_high"], strict=True)],
        "labelled": table["labelled"],
        "accuracy vs rest": table["acc_diff"], "accuracy differs": table["acc_significant"],
        "disparity |d|": table["disparity"],
        "most different": [figures.statistic_label(s) if isinstance(s, str) else "–" for s in table["top_statistic"]],
    })
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "flagged share": st.column_config.ProgressColumn("flagged share", format="percent", min_value=0, max_value=1),
        "accuracy vs rest": st.column_config.NumberColumn("accuracy vs rest", format="percent"),
        "disparity |d|": st.column_config.NumberColumn(format="%.2f", help="largest |Cohen's d| among the slice's "
                                                       "significant attention differences"),
    })
    sample = "every image" if per_mille >= 1000 else f"a hash sample of {per_mille / 10:g} % of the images"
    st.caption(f"Each slice against all other images with this tag, on {sample}: d = Cohen's d (difference of "
               f"means in pooled standard deviations), Welch's t-test; accuracy with its Wilson interval and "
               f"Fisher's exact test. Benjamini–Hochberg at q = {Q} over all {view.tests} tests of this view; * "
               "in the chart = significant. Slices with fewer than 10 sampled images are left out.")

# ------------------------------------------------------------------------------------ one statistic in detail
st.subheader("One statistic in detail")
choices = [s for s in STATISTIC_NAMES if s in STATISTICS]
suggested = str(table.iloc[0]["top_statistic"]) if len(table) and table.iloc[0]["top_statistic"] else "border_energy"
statistic: str = st.selectbox("Statistic", choices, index=param_index("statistic", choices, choices.index(suggested)),
                              key="slices_statistic", format_func=lambda s: STATISTICS[s].label)
definition = STATISTICS[statistic]
st.caption(f"**{definition.label}**: `{definition.formula}`. {definition.description}")
reference = query(current_reference, selected_version())
result = query(slice_analysis, key, statistic, f, summary, None if reference is None else reference.id)
detail = result.table
drifted = detail[detail["ref_drifted"].fillna(False).astype(bool)]
if len(drifted):
    st.warning(f"{len(drifted)} of {len(detail)} values of {md(key)} drifted from the reference on "
               f"{definition.label}: " + ", ".join(f"**{md(v)}**" for v in drifted["value"]),
               icon=":material/warning:")
elif reference is None:
    st.caption("No reference yet: slices are compared with each other only.")
sample_note = ("every image" if result.per_mille >= 1000 else
               f"a hash sample of {result.per_mille / 10:g} % of the images")
st.plotly_chart(figures.slice_boxes(detail, definition.label), key="slice_boxes")
st.caption(f"Distributions, tests and heatmaps use {sample_note}; counts and flagged shares use every image.")
st.dataframe(
    detail[["value", "images", "flagged", "flagged_share", "sampled", "mean", "median", "ref_test", "ref_score",
            "ref_drifted", "test", "score", "drifted", "heatmap_r"]],
    hide_index=True, width="stretch",
    column_config={
        "flagged_share": st.column_config.ProgressColumn("flagged share", format="percent", min_value=0,
                                                         max_value=1),
        "ref_test": st.column_config.TextColumn("test vs reference"),
        "ref_score": st.column_config.NumberColumn("score vs reference", format="%.3g", help=SCORE_HELP),
        "ref_drifted": st.column_config.CheckboxColumn("drifted vs reference"),
        "test": st.column_config.TextColumn("test vs rest"),
        "score": st.column_config.NumberColumn("score vs rest", format="%.3g", help=SCORE_HELP),
        "drifted": st.column_config.CheckboxColumn("differs from rest"),
        "heatmap_r": st.column_config.NumberColumn("heatmap r", format="%.3f",
                                                   help="correlation of the value's mean heatmap with the "
                                                        "rest's"),
        "mean": st.column_config.NumberColumn("mean", format="%.4g"),
        "median": st.column_config.NumberColumn("median", format="%.4g"),
    })
st.subheader("Mean heatmap per value")
if result.maps:
    st.plotly_chart(figures.heatmap_grid({v: m.data for v, m in result.maps.items()}), key="slice_maps")
else:
    st.caption("No heatmaps in the sample.")
