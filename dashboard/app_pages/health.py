"""Health: workers and their heartbeats, the backlog, errors, the database size, the queue sources."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboard import figures
from dashboard.state import query
from dashboard.widgets import empty_notice, format_age
from db.prune import last_run
from db.queries import capture_range, status_counts, workers
from db.queries_slices import database_size, error_reasons, oldest_pending, recent_errors
from db.queue_status import backlog_summary, queue_backlog

#: A worker whose last heartbeat is older than this, and that did not say it stopped, is marked stale.
STALE_AFTER = dt.timedelta(minutes=5)

st.title("Health")
counts = query(status_counts)
size = query(database_size)
pending_since = query(oldest_pending)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Pending", f"{counts['pending']:,}")
c2.metric("Processing", f"{counts['processing']:,}")
c3.metric("Oldest waiting", format_age(pending_since) if pending_since else "none",
          help="first seen time of the oldest pending or processing image")
c4.metric("Database size", "–" if size is None else f"{size / 2**20:,.1f} MiB")
retention = query(last_run)
if retention is not None:
    started, finished, detail = retention
    st.caption(f"Retention (`camwatch prune`): last run {format_age(finished or started)}"
               + (f", {detail.get('images', 0):,} images pruned (captured before {detail.get('cutoff', '?')[:10]})"
                  if finished else ", still running") + ".")
if query(capture_range) is None:
    empty_notice()

st.subheader("Workers")
beats = query(workers)
if len(beats) == 0:
    st.caption("No worker has reported yet.")
else:
    now = dt.datetime.now(dt.UTC)
    stale = [(now - seen) > STALE_AFTER and state != "stopped"
             for seen, state in zip(beats["last_seen_at"], beats["state"], strict=True)]
    n_stale = sum(stale)
    if n_stale:
        st.warning(f"{n_stale} worker(s) stopped reporting (no heartbeat for over "
                   f"{STALE_AFTER.total_seconds() / 60:.0f} min) without saying they stopped.",
                   icon=":material/heart_broken:")
    table = beats.assign(status=["stale" if s else state for s, state in zip(stale, beats["state"], strict=True)],
                         last_seen=[format_age(t, now) for t in beats["last_seen_at"]])
    st.dataframe(table[["worker_id", "status", "last_seen", "hostname", "pid", "source", "model", "method",
                        "processed", "errors", "images_per_s", "started_at"]], hide_index=True, width="stretch")

st.subheader("Errors")
reasons = query(error_reasons)
if len(reasons) == 0:
    st.caption(f"No errors among {counts['ok']:,} processed images.")
else:
    st.plotly_chart(figures.error_reasons(reasons), key="error_reasons")
    st.dataframe(query(recent_errors), hide_index=True, width="stretch",
                 column_config={"image_id": st.column_config.NumberColumn("image", format="%d")})

st.subheader("Queues")
queues = query(backlog_summary)
if len(queues) == 0:
    st.caption("No queue source (redis://, mqtt://) has reported.")
else:
    known = queues["backlog"].dropna()
    q1, q2, q3 = st.columns(3)
    q1.metric("Queue backlog", "unknown" if known.empty else f"{int(known.sum()):,}",
              help="events waiting in the brokers: not yet delivered (lag) plus delivered and not acknowledged "
                   "(pending); MQTT brokers do not report their lag (docs/metrics.md)")
    q2.metric("In flight", f"{int(queues['in_flight'].sum()):,}",
              help="events received by the workers and not yet acknowledged (bounded by max_in_flight)")
    dead = queues["dead_letters"].dropna()
    q3.metric("Dead letters", "–" if dead.empty else f"{int(dead.sum()):,}",
              help="entries of the dead-letter streams (<stream>.dead), each with its reason")
    st.dataframe(queues, hide_index=True, width="stretch")
    consumers = query(queue_backlog)
    now = dt.datetime.now(dt.UTC)
    stale = [(now - seen) > STALE_AFTER and state != "stopped"
             for seen, state in zip(consumers["updated_at"], consumers["state"], strict=True)]
    if any(stale):
        st.warning(f"{sum(stale)} queue consumer(s) stopped reporting without saying they stopped.",
                   icon=":material/heart_broken:")
    disconnected = sum(s == "disconnected" and not old for s, old in zip(consumers["state"], stale, strict=True))
    if disconnected:
        st.error(f"{disconnected} queue consumer(s) cannot reach their broker and are reconnecting with backoff "
                 "(last_error in the table).", icon=":material/cloud_off:")
    st.dataframe(consumers.assign(status=["stale" if s else state for s, state in
                                          zip(stale, consumers["state"], strict=True)],
                                  reported=[format_age(t, now) for t in consumers["updated_at"]])
                 [["source", "consumer", "status", "reported", "lag", "pending", "in_flight", "max_in_flight",
                   "received", "acknowledged", "duplicates", "dead_lettered", "last_error", "worker_id",
                   "location"]], hide_index=True, width="stretch")
