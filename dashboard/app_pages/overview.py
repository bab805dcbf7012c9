"""Overview: counts, throughput, the worker's heartbeat, and every monitored statistic over time."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from camwatch.statistics.registry import IMAGE_KEYS, IMAGE_PROPERTY_COLUMNS, STATISTICS
from dashboard import decisions, figures
from dashboard.literal import md
from dashboard.state import config, query
from dashboard.widgets import (
    bucket_unit,
    format_age,
    require_data,
    sample_note,
    selected_version,
    series_rate,
    share,
    time_filter,
    x_range,
)
from db.queries import (
    current_reference,
    flagged_count,
    label_accuracy,
    latest_drift,
    reference_bands,
    stat_time_series,
    status_counts,
    throughput,
    workers,
)

st.title("Overview")
settings = config().settings
require_data()
f = time_filter()
counts = query(status_counts, f)
processed = counts["ok"] + counts["error"]
flagged = query(flagged_count, f)
heartbeats = query(workers)

c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Images processed", f"{processed:,}", help="ok + error, captured in the selected range")
c2.metric("Errors", f"{counts['error']:,}", help="images the worker could not process")
c3.metric("Flagged share", share(flagged, counts["ok"]), help=f"{flagged:,} flagged of {counts['ok']:,} ok images")
c4.metric("Waiting", f"{counts['pending'] + counts['processing']:,}", help="pending + processing")
if len(heartbeats):
    last = heartbeats.iloc[0]
    c5.metric("Last heartbeat", format_age(last["last_seen_at"]),
              help=f"worker {md(last['worker_id'])} on {md(last['hostname'])}, state {md(last['state'])}")
    st.caption(f"Model: **{md(last['model'] or 'unknown')}** ({md(last['method'] or '?')}), model version "
               f"{last['model_version_id']}, reported by worker {md(last['worker_id'])}.")
else:
    c5.metric("Last heartbeat", "never")
labelled, correct = query(label_accuracy, f)
if labelled:
    st.caption(f"Top-1 accuracy on the **{labelled:,}** images with a known label: **{share(correct, labelled)}** "
               "(labels come from sidecars and annotation files; a reviewer's *wrong label* verdict replaces the "
               "image's label).")

minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)  # a stable cache key for a minute
day_ago = minute - dt.timedelta(days=1)
per_hour = query(throughput, day_ago)
if len(per_hour):
    st.plotly_chart(figures.throughput(per_hour, (day_ago.replace(minute=0), minute + dt.timedelta(hours=1))),
                    key="throughput")
else:
    st.caption("No image finished processing in the last 24 hours.")

statistics = [s for s in settings.drift.statistics if s in STATISTICS]
reference = query(current_reference, selected_version())
references: dict[str, figures.Reference] = {}
drifted: dict[str, bool] = {}
st.subheader("Drift against the reference")
if reference is None:
    st.info("No reference yet: the worker builds one from the first processed images "
            f"(`reference.kind = {settings.reference.kind}`), then computes drift per window.")
else:
    band_rows = query(reference_bands, reference.id)
    references = {r.statistic: figures.reference_of(r.mean, r.std) for r in band_rows.itertuples()}
    window = settings.drift.window_label
    latest = query(latest_drift, reference.id, window)
    st.caption(f"Reference **{md(reference.name)}** ({reference.n_images:,} images); latest tested {md(window)} window"
               + (f" starting {latest['window_start'].iloc[0]:%Y-%m-%d %H:%M} UTC." if len(latest) else
                  ": no drift results yet."))
    badges = st.columns(6)
    for i, row in enumerate(latest.to_dict("records")):
        drifted[row["statistic"]] = decisions.state(row) == "drifted"
        badges[i % 6].markdown(f"**{figures.statistic_label(row['statistic'])}** {decisions.badge(row)}  \n"
                               f"{md(decisions.why(row))}",
                               help=decisions.detail(row))
    if len(latest):
        st.caption("A result drifts when it is significant after the window's error control (q at most the "
                   "FDR) **and** its effect reaches the effect threshold; windows with too few images say "
                   "\"not enough data\", never drifted (docs/metrics.md, \"Drift decisions\").")

unit = bucket_unit(f)
rate = series_rate(f)
series = query(stat_time_series, statistics, unit, f, rate)
labels = {s: figures.statistic_label(s) for s in statistics}
st.subheader(f"Statistics per {unit} (mean)")
st.caption(f"Shaded: {figures.BAND_LABEL} (reference mean ± 1.96 σ/√n, n = images in the {unit}); a mean outside "
           "it is marked red. A red title: the statistic drifted in the latest tested window."
           + sample_note(rate))
# width and height are drift-tested (a new resolution shows in the Drift page's matrix), but a mean width
# over several cameras only follows the camera mix: not charted here
groups = (("Attention", [s for s in statistics if s not in IMAGE_KEYS]),
          ("The images themselves", [s for s in statistics if s in IMAGE_PROPERTY_COLUMNS]))
for title, names in groups:
    if names:
        st.markdown(f"**{title}**")
        st.plotly_chart(figures.statistic_grid(series, names, labels, references, drifted, x_range(f)),
                        key=f"statistics_{title}")
with st.expander("Definitions"):
    for name in statistics:
        d = STATISTICS[name]
        st.markdown(f"**{d.label}** (`{name}`, {d.unit}, range {d.value_range}): `{d.formula}`. {d.description}")
