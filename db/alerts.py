"""The ``alerts`` table: the newest episode of each (rule, subject), applying the state changes planned by
:func:`camwatch.alerts.state.plan`, the dashboard's lists, acknowledging and silencing (with audit events).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import pandas as pd
from sqlalchemy import Engine, func, insert, select, update

from camwatch.alerts.messages import Notice
from camwatch.alerts.rules import Evaluation
from camwatch.alerts.state import StoredAlert, Transition
from db.audit import record_event
from db.limits import column_length, fit
from db.models_alerts import Alert
from db.models_qa import MaintenanceRun
from db.session import write_transaction
from db.types import utcnow

_SUBJECT_CHARS = column_length(Alert.__table__.c.subject_key)
_TARGET_CHARS = column_length(Alert.__table__.c.target)
_SLICE_CHARS = column_length(Alert.__table__.c.slice)
_SUMMARY_CHARS = 2000
HISTORY_COLUMNS = ["id", "rule", "subject_key", "statistic", "class_index", "slice", "target", "state",
                   "first_seen", "last_seen", "resolved_at", "value", "threshold", "summary", "links",
                   "notified_at", "acknowledged_by", "acknowledged_at", "silenced_until"]


def stored_alerts(engine: Engine) -> dict[tuple[str, str], StoredAlert]:
    """The newest episode of every (rule, subject key), with the subject's newest 'firing' notice."""
    newest = (select(func.max(Alert.id).label("id"), func.max(Alert.notified_at).label("last_notice"))
              .group_by(Alert.rule, Alert.subject_key).subquery())
    stmt = select(Alert.id, Alert.rule, Alert.subject_key, Alert.state, Alert.first_seen, Alert.notified_at,
                  Alert.silenced_until, newest.c.last_notice, Alert.last_seen).join(newest, newest.c.id == Alert.id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {(r.rule, r.subject_key): StoredAlert(r.id, r.rule, r.subject_key, r.state, r.first_seen,
                                                 r.notified_at is not None, r.last_notice, r.silenced_until,
                                                 r.last_seen)
            for r in rows}


def _values(e: Evaluation) -> dict[str, object]:
    return {"value": e.value, "threshold": e.threshold, "summary": fit(e.summary, _SUMMARY_CHARS),
            "details": e.details}


def _notice(status: str, e: Evaluation, alert_id: int, first_seen: dt.datetime, now: dt.datetime,
            links: dict[str, str]) -> Notice:
    s = e.subject
    return Notice(status=status, rule=e.rule, subject={"key": s.key, "statistic": s.statistic,
                                                       "class_index": s.class_index, "slice": s.slice,
                                                       "target": s.target},
                  value=e.value, threshold=e.threshold, summary=e.summary, first_seen=first_seen, last_seen=now,
                  since=e.since, alert_id=alert_id, links=links)


def apply_transitions(engine: Engine, transitions: Sequence[Transition], *, now: dt.datetime | None = None,
                      deliver: bool = True, links: Callable[[Evaluation], dict[str, str]] = lambda _e: {}
                      ) -> list[Notice]:
    """Write the state changes in one transaction; returns the notices to send (none when ``deliver`` is
    False: no receiver is configured, and ``notified_at`` stays empty)."""
    now = now or utcnow()
    notices = []
    with write_transaction(engine) as conn:
        for t in transitions:
            e, notify = t.evaluation, t.notify and deliver
            if t.change == "fire":
                s = e.subject
                alert_id = conn.execute(insert(Alert).values(
                    rule=e.rule, subject_key=fit(s.key, _SUBJECT_CHARS), statistic=s.statistic,
                    class_index=s.class_index, slice=fit(s.slice, _SLICE_CHARS),
                    target=None if s.target is None else fit(s.target, _TARGET_CHARS), state="firing",
                    first_seen=now, last_seen=now, since=e.since, links=links(e), silenced_until=t.silenced_until,
                    notified_at=now if notify else None, **_values(e)).returning(Alert.id)).scalar_one()
                if notify:
                    notices.append(_notice("firing", e, alert_id, now, now, links(e)))
            elif t.change == "refresh":
                conn.execute(update(Alert).where(Alert.id == t.alert_id).values(last_seen=now, **_values(e)))
            else:
                first = conn.execute(select(Alert.first_seen).where(Alert.id == t.alert_id)).scalar_one()
                conn.execute(update(Alert).where(Alert.id == t.alert_id).values(
                    state="resolved", last_seen=now, resolved_at=now, resolved_notified=notify, **_values(e)))
                if notify:
                    notices.append(_notice("resolved", e, t.alert_id or 0, first, now, links(e)))
    return notices


def _frame(stmt: object, engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(stmt)  # type: ignore[call-overload]
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def firing_alerts(engine: Engine) -> pd.DataFrame:
    """Firing alerts, newest first (the banner and the top of the Alerts page): :data:`HISTORY_COLUMNS`."""
    cols = [getattr(Alert, c) for c in HISTORY_COLUMNS]
    return _frame(select(*cols).where(Alert.state == "firing").order_by(Alert.first_seen.desc(), Alert.id.desc()),
                  engine)


def alert_history(engine: Engine, limit: int = 500, rule: str | None = None) -> pd.DataFrame:
    """Every episode, newest first (optionally of one rule): :data:`HISTORY_COLUMNS`."""
    stmt = select(*[getattr(Alert, c) for c in HISTORY_COLUMNS]).order_by(Alert.id.desc()).limit(limit)
    if rule is not None:
        stmt = stmt.where(Alert.rule == rule)
    return _frame(stmt, engine)


def firing_counts(engine: Engine) -> dict[str, int]:
    """Firing alerts per rule (the ``camwatch_alerts_firing`` gauge)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.rule, func.count()).where(Alert.state == "firing").group_by(Alert.rule))
        return {rule: int(n) for rule, n in rows}


def acknowledge(engine: Engine, alert_id: int, *, actor: str, client: str | None) -> bool:
    """Acknowledge an alert episode (who and when), with its audit event; False when it does not exist or
    was acknowledged already."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(Alert.rule, Alert.subject_key, Alert.acknowledged_at)
                           .where(Alert.id == alert_id)).one_or_none()
        if row is None or row.acknowledged_at is not None:
            return False
        conn.execute(update(Alert).where(Alert.id == alert_id).values(
            acknowledged_by=fit(actor, 200), acknowledged_at=utcnow()))
        record_event(conn, actor=actor, client=client, action="alert.ack",
                     details={"subject": f"{row.rule}: {row.subject_key}", "alert_id": alert_id})
    return True


def silence(engine: Engine, alert_id: int, until: dt.datetime | None, *, actor: str, client: str | None) -> bool:
    """Silence the alert's subject until ``until`` (None: lift the silence): no notice about it goes out
    meanwhile, also for later episodes. Recorded in the audit trail; False when the alert does not exist."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(Alert.rule, Alert.subject_key).where(Alert.id == alert_id)).one_or_none()
        if row is None:
            return False
        conn.execute(update(Alert).where(Alert.id == alert_id).values(silenced_until=until))
        record_event(conn, actor=actor, client=client, action="alert.silence",
                     details={"subject": f"{row.rule}: {row.subject_key}", "alert_id": alert_id,
                              "until": None if until is None else until.isoformat()})
    return True


def finish_run(engine: Engine, task: str, *, now: dt.datetime | None = None) -> None:
    """Mark the periodic ``task`` taken with :func:`db.prune.try_begin` finished (its next run is due after
    its interval)."""
    with write_transaction(engine) as conn:
        conn.execute(update(MaintenanceRun).where(MaintenanceRun.task == task).values(
            finished_at=now or utcnow(), runs=MaintenanceRun.runs + 1))
