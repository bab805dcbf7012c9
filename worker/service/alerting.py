"""Alert evaluation in the worker: read the facts, evaluate the rules, store the state changes, hand the
notices to :class:`~worker.service.delivery.Delivery` (never blocking the loop).

:meth:`AlertService.tick` runs every ``alerts.every_seconds`` and right after each drift pass (``force``).
Of several workers on one database, one evaluates at a time (the ``alerts`` periodic task in
``maintenance_runs``, :func:`db.prune.try_begin`), so an alert is stored and notified once. Any failure is
logged and the worker goes on (the next tick tries again).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine

from camwatch.alerts.facts import AlertFacts, DriftContext
from camwatch.alerts.messages import Notice, alert_links
from camwatch.alerts.notifiers import configured_notifiers
from camwatch.alerts.rules import Evaluation, enabled_rules, evaluate
from camwatch.alerts.state import plan
from camwatch.settings import Settings
from db.alert_facts import drift_context, drift_facts, heartbeat_facts, share_facts, source_facts
from db.alerts import apply_transitions, finish_run, firing_counts, stored_alerts
from db.faults import DatabaseUnavailable
from db.prune import try_begin
from db.types import utcnow
from worker.service.delivery import Delivery

log = logging.getLogger(__name__)

TASK = "alerts"


CONTEXT_SECONDS = 600.0  # a drifted subject's summary numbers are read again after this long


#: How many of the newest drift windows the drift rule reads: its condition needs ``consecutive_windows``;
#: the rest date the run of drifted windows in the summary (``since``), up to a month of day windows.
SINCE_WINDOWS = 31


def gather_facts(engine: Engine, settings: Settings, now: dt.datetime, model_version_id: int | None = None,
                 cache: dict[tuple[str, str, dt.datetime], tuple[float, DriftContext]] | None = None) -> AlertFacts:
    """The facts the enabled rules read (drift summary numbers kept in ``cache`` for :data:`CONTEXT_SECONDS`)."""
    cache = {} if cache is None else cache
    a, rules = settings.alerts, set(enabled_rules(settings.alerts))
    facts = AlertFacts(now=now)
    if "drift" in rules:
        # enough windows to date a run of drifted windows ("since 2026-11-07") beyond the firing condition's
        facts.drift = drift_facts(engine, settings.drift.window_label,
                                  max(a.drift.consecutive_windows + 1, SINCE_WINDOWS), model_version_id)
        newest: dict[tuple[str, str], dt.datetime] = {}
        for f in facts.drift:
            key = (f.statistic, f.slice)
            newest[key] = max(newest.get(key, f.window_start), f.window_start)
        wanted = {(f.statistic, f.slice, f.window_start, f.window_end) for f in facts.drift
                  if f.drifted and f.window_start == newest[(f.statistic, f.slice)]}
        mono = time.monotonic()
        for s, sl, start, end in sorted(wanted):
            kept = cache.get((s, sl, start))
            if kept is None or mono - kept[0] > CONTEXT_SECONDS:
                cache[(s, sl, start)] = kept = (mono, drift_context(engine, s, sl, start, end, model_version_id))
            facts.drift_context[(s, sl, start)] = kept[1]
        for gone in set(cache) - set(facts.drift_context):  # subjects no longer drifted
            del cache[gone]
    if rules & {"flagged_share", "error_rate"}:
        minutes = max(a.flagged_share.window_minutes, a.error_rate.window_minutes)
        facts.shares = share_facts(engine, dt.timedelta(minutes=minutes), settings.drift.slice_tags)
    if "source_silent" in rules:
        facts.sources = source_facts(engine, now, dt.timedelta(days=a.source_silent.forget_after_days))
    if "heartbeat_missing" in rules:
        facts.heartbeats = heartbeat_facts(engine, now, dt.timedelta(days=a.heartbeat_missing.forget_after_days))
    return facts


class AlertService:
    """Constructed without I/O (the delivery threads start here); :meth:`tick` from the loop; :meth:`close`."""

    def __init__(self, settings: Settings, engine: Engine, runner: str, *,
                 clock: Callable[[], dt.datetime] = utcnow, model_version_id: int | None = None,
                 on_result: Callable[[str, bool], None] = lambda _k, _ok: None,
                 on_firing: Callable[[dict[str, int]], None] = lambda _c: None) -> None:
        self.settings = settings
        self.engine = engine
        self.runner = runner
        self.clock = clock
        self.model_version_id = model_version_id  # the primary model's: its drift is what alerts read
        self.on_firing = on_firing
        self.delivery = Delivery(configured_notifiers(settings.alerts), settings.alerts, on_result)
        self._last = -float("inf")
        self._context: dict[tuple[str, str, dt.datetime], tuple[float, DriftContext]] = {}
        self.evaluations: list[Evaluation] = []  # of the newest tick (tests, logs)
        for channel in self.delivery.channels:
            log.info("alerts: notifying %s (%s)", channel.notifier.key, channel.notifier.where)

    def _links(self, e: Evaluation) -> dict[str, str]:
        return alert_links(self.settings.dashboard.base_url, e.rule, e.subject.statistic, e.subject.slice)

    def tick(self, *, force: bool = False) -> list[Notice]:
        """Evaluate when due (or ``force``); returns the notices handed to delivery."""
        a = self.settings.alerts
        mono = time.monotonic()
        if not a.enabled or (not force and mono - self._last < a.every_seconds):
            return []
        self._last = mono
        try:
            return self._evaluate(force)
        except DatabaseUnavailable:
            raise
        except Exception:  # alerting must not stop the monitoring; the next tick tries again
            log.exception("alert evaluation failed; retried in %g s", a.every_seconds)
            return []

    def _evaluate(self, force: bool) -> list[Notice]:
        a = self.settings.alerts
        now = self.clock()
        every = dt.timedelta(0) if force else dt.timedelta(seconds=a.every_seconds / 2)
        if not try_begin(self.engine, self.runner, every, stale_after=dt.timedelta(minutes=10), task=TASK, now=now):
            return []
        try:
            facts = gather_facts(self.engine, self.settings, now, self.model_version_id, self._context)
            self.evaluations = evaluate(facts, a, dead_after_seconds=self.settings.dead_after_seconds)
            changes = plan(self.evaluations, stored_alerts(self.engine), now,
                           dt.timedelta(minutes=a.cooldown_minutes), dt.timedelta(minutes=a.resolve_after_minutes))
            notices = apply_transitions(self.engine, changes, now=now, deliver=self.delivery.configured,
                                        links=self._links)
        finally:
            finish_run(self.engine, TASK, now=now)
        for change in changes:
            if change.change != "refresh":
                log.info("alert %s %s: %s%s", change.evaluation.rule, "fired" if change.change == "fire"
                         else "resolved", change.evaluation.summary, "" if change.notify else " (not notified)")
        queued = time.monotonic()
        for notice in notices:
            self.delivery.submit(dataclasses.replace(notice, queued_at=queued))
        self.on_firing(firing_counts(self.engine))
        return notices

    def close(self) -> None:
        self.delivery.close()
