"""From evaluations and the stored alerts to state changes and the notifications they send.

One stored alert per (rule, subject) *episode*: it fires, stays firing while the rule says so (its
``last_seen`` and value refreshed, no new notice: deduplicated), and resolves when the rule has said ``ok``
for ``resolve_after`` since it last said firing (a hold-down like Prometheus' ``keep_firing_for``: a drift
window that is still filling, or one quiet evaluation, does not flap the alert).
A later firing opens a new episode (the history). Notifications go on state changes only:

- ``firing``: unless the subject is silenced (``silenced_until`` in the future, carried over to later
  episodes) or a 'firing' notice of the same subject went out less than ``cooldown`` ago (a flapping
  subject notifies once per cooldown);
- ``resolved``: when its 'firing' notice went out (nobody is told of a recovery they never heard of)
  and the subject is not silenced.

``no_data`` evaluations change nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from camwatch.alerts.rules import Evaluation

Change = Literal["fire", "refresh", "resolve"]


@dataclass(frozen=True)
class StoredAlert:
    """The newest episode of a (rule, subject), as :mod:`db.alerts` reads it."""

    id: int
    rule: str
    subject_key: str
    state: str  # firing | resolved
    first_seen: dt.datetime
    notified_firing: bool  # this episode's 'firing' notice went out
    last_fire_notice: dt.datetime | None  # newest 'firing' notice of the subject, any episode
    silenced_until: dt.datetime | None
    last_seen: dt.datetime | None = None  # while firing: the last evaluation that said firing


@dataclass(frozen=True)
class Transition:
    change: Change
    evaluation: Evaluation
    alert_id: int | None  # None: a new episode
    notify: bool
    silenced_until: dt.datetime | None = None  # carried over to a new episode


def silenced(alert: StoredAlert | None, now: dt.datetime) -> bool:
    return alert is not None and alert.silenced_until is not None and alert.silenced_until > now


def plan(evaluations: list[Evaluation], stored: dict[tuple[str, str], StoredAlert], now: dt.datetime,
         cooldown: dt.timedelta, resolve_after: dt.timedelta = dt.timedelta(0)) -> list[Transition]:
    """The state changes the ``evaluations`` make to the ``stored`` alerts (keyed by (rule, subject key))."""
    out = []
    for e in evaluations:
        if e.decision == "no_data":
            continue
        alert = stored.get((e.rule, e.subject.key))
        firing_now = alert is not None and alert.state == "firing"
        if e.firing and firing_now:
            assert alert is not None
            out.append(Transition("refresh", e, alert.id, notify=False))
        elif e.firing:
            cooled = alert is None or alert.last_fire_notice is None or now - alert.last_fire_notice >= cooldown
            out.append(Transition("fire", e, None, notify=cooled and not silenced(alert, now),
                                  silenced_until=None if alert is None else alert.silenced_until))
        elif firing_now:
            assert alert is not None
            if alert.last_seen is not None and now - alert.last_seen < resolve_after:
                continue  # held: ok for less than resolve_after since it last said firing
            out.append(Transition("resolve", e, alert.id, notify=alert.notified_firing and not silenced(alert, now)))
    return out
