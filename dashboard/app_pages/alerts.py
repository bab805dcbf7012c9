"""Alerts: what fires now (acknowledge, silence its subject for a while), and the history of every episode.
Alerts are evaluated by the worker (docs/alerts.md); acknowledging and silencing are recorded in the audit
trail with the login's identity."""

from __future__ import annotations

import streamlit as st

from camwatch.alerts.rules import RULES
from dashboard.alerts_ui import SILENCE_CHOICES, alert_choice, silence_until
from dashboard.auth import actor
from dashboard.literal import md
from dashboard.state import clear_cache, config, engine, query
from db.alerts import acknowledge, alert_history, firing_alerts, silence
from db.types import utcnow

st.title("Alerts")
settings = config().settings
if not settings.alerts.enabled:
    st.info("Alert evaluation is off in the settings ([alerts] enabled = false).")
firing = query(firing_alerts)
COLUMNS = ["id", "rule", "summary", "first_seen", "last_seen", "value", "threshold", "acknowledged_by",
           "silenced_until"]
links = {"drift": st.column_config.LinkColumn("Drift chart"), "flagged": st.column_config.LinkColumn("Flagged")}

st.subheader("Firing now")
if firing.empty:
    st.success("No alert is firing.", icon=":material/check_circle:")
else:
    shown = firing[COLUMNS].assign(drift=firing["links"].map(lambda v: (v or {}).get("drift")),
                                   flagged=firing["links"].map(lambda v: (v or {}).get("flagged")))
    st.dataframe(shown, hide_index=True, width="stretch", column_config=links)
    rows = {int(r["id"]): r for _, r in firing.iterrows()}
    chosen = st.selectbox("Alert", list(rows), format_func=lambda i: alert_choice(rows[i]), key="alert_pick")
    c1, c2, c3 = st.columns([1, 1, 2])
    if c1.button("Acknowledge", icon=":material/done:", disabled=rows[chosen]["acknowledged_at"] is not None
                 and rows[chosen]["acknowledged_at"] == rows[chosen]["acknowledged_at"]):
        who, client = actor(settings)
        done = acknowledge(engine(), chosen, actor=who, client=client)
        clear_cache()
        st.success(f"Alert {chosen} acknowledged by {md(who)}." if done else "Already acknowledged.")
    span = c3.selectbox("Silence for", list(SILENCE_CHOICES), key="alert_silence_span")
    if c2.button("Silence", icon=":material/notifications_off:",
                 help="No notification about this subject until then (also if it fires again)"):
        who, client = actor(settings)
        until = silence_until(utcnow(), SILENCE_CHOICES[span])
        silence(engine(), chosen, until, actor=who, client=client)
        clear_cache()
        st.success(f"Alert {chosen}'s subject silenced until {until:%Y-%m-%d %H:%M} UTC.")

st.subheader("History")
rule = st.selectbox("Rule", ["(every rule)", *RULES], key="alert_rule",
                    help="; ".join(f"{k}: {r.description}" for k, r in RULES.items()))
history = query(alert_history, 500, None if rule == "(every rule)" else rule)
if history.empty:
    st.caption("No alert yet.")
else:
    st.dataframe(history[[*COLUMNS[:2], "state", *COLUMNS[2:], "resolved_at", "notified_at"]], hide_index=True,
                 width="stretch")
    st.caption("One row per episode: an alert fires, stays firing while its rule says so, and resolves; a later "
               "firing is a new row. 'notified_at' is empty when no notification went out (cooldown, silence or no "
               "receiver configured).")
