"""Compare: two model versions on the images both processed -- prediction agreement, the paired difference
of every statistic, the images where the attention moved most (side by side), per slice. The view a team
uses after retraining a model away from a shortcut. Definitions: docs/metrics.md, "Model versions compared"."""

from __future__ import annotations

import math

import streamlit as st

from dashboard.compare import compare_view, differences_figure, pair_pictures
from dashboard.figures import class_label
from dashboard.images import GALLERY_SIDE
from dashboard.literal import md
from dashboard.params import id_param
from dashboard.state import config, query
from dashboard.widgets import ANY, require_data, selected_version, slice_picker, time_filter, with_filters
from db.queries import class_names
from db.queries_slices import tag_keys
from db.versions import versions_with_results

SHOWN_PAIRS = 12


def _pick(label: str, ids: list[int], labels: dict[int, str], param: str, default: int) -> int:
    preset = id_param(param)
    index = ids.index(preset) if preset in ids else ids.index(default)
    chosen = int(st.selectbox(label, ids, index=index, format_func=lambda i: labels[i], key=f"compare_{param}"))
    st.query_params[param] = str(chosen)
    return chosen


st.title("Compare")
require_data()
versions = query(versions_with_results)
if len(versions) < 2:
    st.info("Comparing needs results of two model versions: run a shadow model (`--model` twice, or "
            "`[[models]]` in camwatch.toml) or `camwatch reprocess --model SPEC --since DATE`.")
    st.stop()
ids = [v.id for v in versions]  # newest first
labels = {v.id: v.label for v in versions}  # selectbox options are plain text
selected = selected_version() or ids[0]
baseline = next((i for i in ids if i != selected), ids[-1])
c1, c2 = st.columns(2)
with c1:
    a = _pick("Version A (before)", ids, labels, "a", baseline)
with c2:
    b = _pick("Version B (after)", ids, labels, "b", selected if selected != a else baseline)
if a == b:
    st.warning("Pick two different versions.")
    st.stop()
tag = slice_picker("compare_slice")
keys = query(tag_keys)
per = st.selectbox("Per slice of tag", [ANY, *keys], index=1 + keys.index("camera") if "camera" in keys else 0,
                   key="compare_per")
f = with_filters(time_filter(), class_index=None, tag=tag)
view = query(compare_view, a, b, f, None if per == ANY else per)
if view.n == 0:
    st.info("No image in the selected range has results of both versions.")
    st.stop()

m1, m2, m3 = st.columns(3)
m1.metric("Images both processed", f"{view.n:,}", help="With a prediction and a primary heatmap of both versions"
          + ("" if view.per_mille >= 1000 else f"; a {view.per_mille / 10:g} % hash sample"))
m2.metric("Prediction agreement", f"{100 * view.agreement:.1f} %", help="Same top-1 class under both versions")
m3.metric("Mean attention shift", "–" if math.isnan(view.mean_shift) else f"{view.mean_shift:.3f}",
          help="1 − Pearson r of the two heatmaps of an image, averaged (0: same place, 1: unrelated)")

st.subheader("Attention moved most")
st.caption("Images by decreasing attention shift (1 − r of the two versions' heatmaps): version A left, "
           "version B right.")
names_a, names_b = query(class_names, a), query(class_names, b)
moved = view.moved.head(SHOWN_PAIRS)
table = moved.assign(shift=moved["shift"].round(4))
st.dataframe(table, hide_index=True, key="compare_moved", column_config={
    "image_id": "Image", "shift": "Shift (1 − r)", "class_a": "Class (A)", "class_b": "Class (B)", "slice": "Slice"})
pictures = query(pair_pictures, moved["image_id"].tolist(), config().source_roots, a, b)
for row in moved.itertuples():
    left, right = pictures.get(int(row.image_id), (None, None))
    st.markdown(f"**Image {int(row.image_id)}** · shift {row.shift:.3f} · "
                f"{md(class_label(names_a, int(row.class_a)))} → {md(class_label(names_b, int(row.class_b)))}")
    col_a, col_b = st.columns(2)
    for col, picture, version in ((col_a, left, a), (col_b, right, b)):
        with col:
            if picture is None:
                st.caption(f"v{version}: no heatmap to draw")
            else:
                st.image(picture.data, caption=f"v{version} ({picture.source})", width=GALLERY_SIDE)

st.subheader("Paired difference of every statistic (B − A)")
st.plotly_chart(differences_figure(view.differences), key="compare_differences")
st.dataframe(view.differences, hide_index=True, key="compare_table")
if per != ANY:
    st.subheader(f"Per {md(per)}")
    st.dataframe(view.slices, hide_index=True, key="compare_slices")
