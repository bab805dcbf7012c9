"""Drift: every tested quantity per window at a glance (attention, model outputs and the images themselves,
so a root cause shows beside the drift), one statistic against its reference over time with its drift
strength per window, the image properties and camera models of the same images, the class mix, and the
mean heatmaps of the latest window next to the reference's."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from camwatch.conventions import ALL_CLASSES, ALL_IMAGES, parse_window_kind, slice_label
from camwatch.monitoring.heatmaps import correlation_on_grid
from camwatch.statistics.registry import (
    CATEGORIES,
    ENGINE_KEYS,
    IMAGE_KEYS,
    IMAGE_PROPERTY_COLUMNS,
    STATISTICS,
)
from dashboard import decisions, figures, figures_qa
from dashboard.analysis import window_mean_heatmaps
from dashboard.literal import md, plot_text
from dashboard.state import config, query
from dashboard.widgets import (
    bucket_unit,
    class_picker,
    names,
    param_index,
    require_data,
    sample_note,
    selected_version,
    series_rate,
    slice_picker,
    time_filter,
    with_filters,
    x_range,
)
from db.queries import (
    STATISTIC_NAMES,
    ImageFilter,
    class_mix,
    current_reference,
    drift_history,
    drift_slices,
    drift_statistics,
    drift_window_kinds,
    latest_drift,
    reference_bands,
    reference_heatmaps,
    stat_time_series,
)
from db.queries_qa import category_series, drift_matrix

st.title("Drift")
settings = config().settings
require_data()
reference = query(current_reference, selected_version())
kinds = query(drift_window_kinds, reference.id) if reference is not None else []
tested = query(drift_statistics, reference.id, kinds[0]) if reference is not None and kinds else []
choices = list(dict.fromkeys([*settings.drift.statistics, *tested]))
# energy outside the object is the statistic that matters when object regions are known
preferred = next((s for s in ("energy_outside", "border_energy") if s in tested), None)
default = param_index("statistic", choices, choices.index(preferred) if preferred in choices else 0)

c1, c2, c3, c4 = st.columns(4)
with c1:
    statistic = st.selectbox("Statistic", choices, index=default, key="drift_statistic",
                             format_func=figures.statistic_label)
with c2:
    window_kind = st.selectbox("Window", kinds or ["(none yet)"], key="drift_window")
with c3:
    class_index = class_picker("Class", key="drift_class")
with c4:
    tag = slice_picker("drift_slice")
if statistic in STATISTICS:
    st.caption(f"**{STATISTICS[statistic].label}**: `{STATISTICS[statistic].formula}`. "
               f"{STATISTICS[statistic].description}")

class_names = names()
f = with_filters(time_filter(), class_index=class_index, tag=tag)
axis = x_range(f)
cls = ALL_CLASSES if class_index is None else class_index
rate = series_rate(f)
references: dict[str, figures.Reference] = {}
if reference is not None:
    bands = query(reference_bands, reference.id, cls)
    references = {r.statistic: figures.reference_of(r.mean, r.std) for r in bands.itertuples()}
# The worker may test slices (tag values) on their own; otherwise the slice's drift is the overall one.
wanted = ALL_IMAGES if tag[0] is None or tag[1] is None or "=" in tag[0] else slice_label(tag[0], tag[1])
tested_slice = ALL_IMAGES
if reference is not None and kinds:
    tested_slice = wanted if wanted in query(drift_slices, reference.id, window_kind) else ALL_IMAGES
scope = (f"slice {tested_slice}" if tested_slice else "every image"  # plain text: shown through md / plot_text
         + (f" (the worker tests no slice {wanted})" if wanted else ""))
label = figures.statistic_label(statistic)

st.subheader("Drift at a glance")
if reference is None or not kinds:
    st.info("No drift results yet: the worker computes them per window once a reference is built.")
else:
    matrix = query(drift_matrix, reference.id, window_kind, cls, tested_slice, f.start, f.end)
    present = set(matrix["statistic"])
    grouped = {
        "attention": [*[k for k in STATISTICS if STATISTICS[k].source == "heatmap"], "attention_correlation",
                      "heatmap_correlation"],
        "model output": [*ENGINE_KEYS, "predicted_class"],
        "the images": [*IMAGE_KEYS, *CATEGORIES]}
    order = [s for names in grouped.values() for s in names if s in present]
    groups = {s: group for group, names in grouped.items() for s in names}
    if order:
        st.plotly_chart(figures_qa.drift_matrix(matrix, order, {s: figures.statistic_label(s) for s in order},
                                                plot_text(f"Drift per {window_kind} window: {scope}"), groups),
                        key="drift_matrix")
        st.caption("One cell per window and tested quantity: attention first, then the model's outputs, then the "
                   "images themselves (brightness... camera model). Colour = the test's drift strength over its "
                   "threshold's (1 = the threshold, whatever the test); ● drifted (the calibrated decision: hover for "
                   "why); grey: not enough data. A row of "
                   "the images turning red on the day attention does is the first root cause to check.")

if statistic in STATISTIC_NAMES:
    series = query(stat_time_series, [statistic], bucket_unit(f), f, rate)
    st.plotly_chart(figures.statistic_series(series, statistic, label, references.get(statistic), axis),
                    key="drift_series")
    st.caption(f"Shaded: {figures.BAND_LABEL} (reference mean ± 1.96 σ/√n); means outside it in red."
               + sample_note(rate))
else:
    st.caption(f"{label} (`{statistic}`) is tested per window, not stored per image: see its drift score below.")

history = query(drift_history, reference.id, window_kind, statistic, cls, f.start, tested_slice) \
    if reference is not None and kinds else None
if reference is not None and history is not None and len(history):
    counts = decisions.summary(history)
    st.plotly_chart(figures.drift_scores(history, label, axis), key="drift_scores")
    st.caption(f"{counts['drifted']} of {len(history)} windows drifted (red), {counts['not_enough_data']} had "
               f"not enough data (grey). Drift tests cover {md(scope)}"
               + ("" if tested_slice or not wanted else "; the slice filter applies to the values and heatmaps only")
               + ". Red = the calibrated decision: significant after the window's error control and an effect "
                 "at least the effect threshold (hover a point for why); the dashed line is the test's own "
                 "threshold.")
    with st.expander("Latest window: every decision and why"):
        latest_results = query(latest_drift, reference.id, window_kind, cls, tested_slice)
        st.dataframe(decisions.decision_table(latest_results), hide_index=True, width="stretch")
elif history is not None:
    st.info(f"No `{window_kind}` drift results for this statistic and class in the selected range.")

st.subheader("The images themselves")
st.caption("Brightness, contrast, sharpness and colourfulness of the same images (slice and class filters "
           "apply), and the cameras that took them (EXIF): what changed in front of the model.")
properties = list(IMAGE_PROPERTY_COLUMNS)
property_series = query(stat_time_series, properties, bucket_unit(f), f, rate)
if len(property_series):
    st.plotly_chart(figures.statistic_grid(property_series, properties,
                                           {p: figures.statistic_label(p) for p in properties}, references,
                                           {}, axis, columns=4), key="drift_properties")
    models = query(category_series, "camera_model", bucket_unit(f), f, rate)
    if len(models):
        st.plotly_chart(figures_qa.category_mix(models, "camera_model", "Camera models over time (EXIF)", axis,
                                                bucket_unit(f)), key="drift_camera_models")

mix = query(class_mix, bucket_unit(f), with_filters(f, class_index=None, tag=tag), rate)
if len(mix):
    st.plotly_chart(figures.class_mix(mix, class_names, axis, bucket_unit(f)), key="drift_mix")

st.subheader("Mean heatmaps: reference vs latest window")
if reference is None:
    st.stop()
ref_maps = query(reference_heatmaps, reference.id)
latest = history.iloc[-1] if history is not None and len(history) else None
if latest is None:
    st.info("No window to compare yet.")
    st.stop()
# Time windows are half-open [start, end); count windows name their first and last capture (closed).
closing = dt.timedelta(microseconds=1) if parse_window_kind(window_kind)[0] == "count" else dt.timedelta(0)
window = ImageFilter(start=latest["window_start"].to_pydatetime(), end=latest["window_end"].to_pydatetime() + closing,
                     tag_key=tag[0], tag_value=tag[1], model_version_id=f.model_version_id)
grid = ref_maps[ALL_CLASSES][0].shape if ALL_CLASSES in ref_maps else None
current = query(window_mean_heatmaps, window, grid)
st.caption(f"Window {window.start:%Y-%m-%d %H:%M} – {window.end:%Y-%m-%d %H:%M} UTC; each map is normalised to "
           "sum 1 before averaging.")
shown = [cls] if cls != ALL_CLASSES else [ALL_CLASSES, *sorted((c for c in current if c != ALL_CLASSES),
                                               key=lambda c: -current[c].n)[:3]]
columns = st.columns(2)
for i, c in enumerate(shown):
    ref = ref_maps.get(c)
    cur = current.get(c)
    r = correlation_on_grid(ref[0], cur.data) if ref is not None and cur is not None else None
    name = "all classes" if c == ALL_CLASSES else figures.class_label(class_names, c)
    title = f"{name}: r = {r:.3f}" if r is not None else f"{name}: no comparison"
    title += f" (n = {ref[1] if ref else 0} / {cur.n if cur else 0})"
    columns[i % 2].plotly_chart(figures.heatmap_pair(None if ref is None else ref[0],
                                                     None if cur is None else cur.data, title), key=f"pair_{c}")
