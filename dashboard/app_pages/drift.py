"""Drift: one statistic against its reference over time, drift scores per window, the class mix, and the
mean heatmaps of the latest window next to the reference's."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from camwatch.conventions import ALL_CLASSES, ALL_IMAGES, parse_window_kind, slice_label
from camwatch.monitoring.heatmaps import correlation_on_grid
from camwatch.statistics.registry import STATISTICS
from dashboard import figures
from dashboard.analysis import window_mean_heatmaps
from dashboard.literal import md
from dashboard.state import config, query
from dashboard.widgets import (
    bucket_unit,
    class_picker,
    names,
    param_index,
    require_data,
    sample_note,
    series_rate,
    slice_picker,
    time_filter,
    with_filters,
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
    reference_bands,
    reference_heatmaps,
    stat_time_series,
)

st.title("Drift")
settings = config().settings
require_data()
reference = query(current_reference)
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
cls = ALL_CLASSES if class_index is None else class_index
rate = series_rate(f)
if statistic in STATISTIC_NAMES:
    series = query(stat_time_series, [statistic], bucket_unit(f), f, rate)
    limits, mean = None, None
    if reference is not None:
        bands = query(reference_bands, reference.id, cls)
        row = bands[bands["statistic"] == statistic]
        if len(row):
            mean = float(row["mean"].iloc[0]) if row["mean"].iloc[0] is not None else None
            limits = figures.band(mean, row["std"].iloc[0])
    label = figures.statistic_label(statistic)
    st.plotly_chart(figures.statistic_series(series, statistic, label, limits, mean), key="drift_series")
    if rate < 1000:
        st.caption(sample_note(rate))
else:
    label = figures.statistic_label(statistic)
    st.caption(f"{label} (`{statistic}`) is tested per window, not stored per image: see its drift score below.")

if reference is None or not kinds:
    st.info("No drift results yet: the worker computes them per window once a reference is built.")
else:
    # The worker may test slices (tag values) on their own; otherwise the slice's drift is the overall one.
    wanted = ALL_IMAGES if tag[0] is None or tag[1] is None or "=" in tag[0] else slice_label(tag[0], tag[1])
    tested_slice = wanted if wanted in query(drift_slices, reference.id, window_kind) else ALL_IMAGES
    history = query(drift_history, reference.id, window_kind, statistic, cls, f.start, tested_slice)
    if len(history):
        n_drifted = int(history["drifted"].sum())
        st.plotly_chart(figures.drift_scores(history, label), key="drift_scores")
        scope = (f"the images of slice {md(tested_slice)}" if tested_slice else
                 "every image of the class" + (f" (the worker tests no slice {md(wanted)}: the slice filter "
                                               "applies to the values and heatmaps only)" if wanted else ""))
        st.caption(f"{n_drifted} of {len(history)} windows drifted (red). Drift tests cover {scope}.")
    else:
        st.info(f"No {md(window_kind)} drift results for this statistic and class in the selected range.")

mix = query(class_mix, bucket_unit(f), with_filters(f, class_index=None, tag=tag), rate)
if len(mix):
    st.plotly_chart(figures.class_mix(mix, class_names), key="drift_mix")

st.subheader("Mean heatmaps: reference vs latest window")
if reference is None:
    st.stop()
ref_maps = query(reference_heatmaps, reference.id)
latest = history.iloc[-1] if kinds and len(history) else None
if latest is None:
    st.info("No window to compare yet.")
    st.stop()
# Time windows are half-open [start, end); count windows name their first and last capture (closed).
closing = dt.timedelta(microseconds=1) if parse_window_kind(window_kind)[0] == "count" else dt.timedelta(0)
window = ImageFilter(start=latest["window_start"].to_pydatetime(), end=latest["window_end"].to_pydatetime() + closing,
                     tag_key=tag[0], tag_value=tag[1])
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
