"""Slices: one statistic per value of a tag (camera, site...), each value tested against the rest.

A shortcut shows up here: one camera whose heatmaps sit on a watermark has its own distribution of
border energy and centroid, a high flagged share, a drifted test and a mean heatmap unlike the others."""

from __future__ import annotations

import streamlit as st

from camwatch.statistics.registry import STATISTICS
from dashboard import figures
from dashboard.analysis import slice_analysis
from dashboard.literal import md
from dashboard.state import query
from dashboard.widgets import (
    class_picker,
    options_or_stop,
    param_index,
    require_data,
    time_filter,
    with_filters,
)
from db.queries import STATISTIC_NAMES, current_reference
from db.queries_slices import slice_summary, tag_keys

SCORE_HELP = ("ks: p-value, drifts below 0.05; wasserstein: W1 / std of the comparison sample, drifts above "
              "0.1. One odd slice makes every other slice differ from 'the rest' too: the reference test marks it.")

st.title("Slices")
require_data()
keys = list(options_or_stop(query(tag_keys), "No tags stored yet: the worker tags images from their folders "
                                        "(`path_tags`, e.g. site/camera) and from sidecar files."))
choices = [s for s in STATISTIC_NAMES if s in STATISTICS]
c1, c2, c3 = st.columns(3)
with c1:
    key: str = st.selectbox("Tag", keys, index=param_index("tag", keys, keys.index("camera") if "camera" in keys else 0),
                       key="slices_tag")
with c2:
    statistic: str = st.selectbox("Statistic", choices, index=param_index("statistic", choices, choices.index("border_energy")),
                             key="slices_statistic", format_func=lambda s: STATISTICS[s].label)
with c3:
    class_index = class_picker("Class", key="slices_class")
definition = STATISTICS[statistic]
st.caption(f"**{definition.label}**: `{definition.formula}`. {definition.description}")

f = with_filters(time_filter(), class_index=class_index, tag=(None, None))
reference = query(current_reference)
summary = query(slice_summary, key, f)
result = query(slice_analysis, key, statistic, f, summary, None if reference is None else reference.id)
table = result.table
if len(table) == 0:
    st.info("No processed image with this tag in the selected range.")
    st.stop()
drifted = table[table["ref_drifted"].fillna(False).astype(bool)]
if len(drifted):
    st.warning(f"{len(drifted)} of {len(table)} values of {md(key)} drifted from the reference: "
               + ", ".join(f"**{md(v)}**" for v in drifted["value"]), icon=":material/warning:")
elif reference is None:
    st.caption("No reference yet: slices are compared with each other only.")
sample_note = ("every image" if result.per_mille >= 1000 else
               f"a hash sample of {result.per_mille / 10:g} % of the images")
st.plotly_chart(figures.slice_boxes(table, definition.label), key="slice_boxes")
st.caption(f"Distributions, tests and heatmaps use {sample_note}; counts and flagged shares use every image.")
st.dataframe(
    table[["value", "images", "flagged", "flagged_share", "sampled", "mean", "median", "ref_test", "ref_score",
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
