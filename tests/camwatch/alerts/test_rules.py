"""The rules' decisions and summaries on hand-made facts, and the state plan (dedupe, cooldown, silence)."""

from __future__ import annotations

import datetime as dt

from camwatch.alerts.config import AlertSettings
from camwatch.alerts.facts import AlertFacts, DriftContext, DriftFact, HeartbeatFact, ShareFact, SourceFact
from camwatch.alerts.rules import RULES, Subject, evaluate
from camwatch.alerts.state import StoredAlert, plan

T = dt.datetime(2026, 11, 9, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _drift(day: int, drifted: bool, *, slice_name: str = "camera=cam-2", class_index: int = -1,
           statistic: str = "energy_outside") -> DriftFact:
    start = T + day * DAY
    return DriftFact(statistic, class_index, slice_name, "ks", start, start + DAY, drifted, 0.7 if drifted else 0.1, 0.3)


def test_drift_fires_on_the_newest_windows_and_says_what_changed() -> None:
    facts = AlertFacts(now=T + 5 * DAY, drift=[_drift(0, False), _drift(1, True), _drift(2, True)],
                       drift_context={("energy_outside", "camera=cam-2", T + 2 * DAY): DriftContext(0.24, 0.61, 0.56, 80)})
    [e] = evaluate(facts, AlertSettings())
    assert (e.rule, e.decision, e.value, e.threshold) == ("drift", "firing", 0.7, 0.3)
    assert e.subject == Subject("energy_outside", -1, "camera=cam-2")
    assert e.summary == ("camera=cam-2: energy outside object rose from 0.24 to 0.61 since 2026-11-10; "
                         "56 % of its images flagged")
    assert e.since == T + DAY
    two = AlertSettings(drift={"consecutive_windows": 3})
    assert evaluate(facts, two)[0].decision == "ok"  # only two drifted windows in a row


def test_drift_subjects_follow_the_settings() -> None:
    facts = AlertFacts(now=T, drift=[_drift(0, True, slice_name=""), _drift(0, True, class_index=2),
                                     _drift(0, True, statistic="confidence")])
    assert {e.subject.key for e in evaluate(facts, AlertSettings())} == {
        "statistic=energy_outside", "statistic=confidence;slice=camera=cam-2"}
    keys = {e.subject.key for e in evaluate(facts, AlertSettings(drift={"per_class": True, "per_slice": False,
                                                                      "statistics": ["energy_outside"]}))}
    assert keys == {"statistic=energy_outside"}  # the class's result is in a slice, and slices are off
    keys = {e.subject.key for e in evaluate(facts, AlertSettings(drift={"per_class": True}))}
    assert "statistic=energy_outside;class=2;slice=camera=cam-2" in keys


def test_share_rules_decide_with_enough_images_only() -> None:
    share = [ShareFact("", T, T, done=100, ok=90, errors=10, flagged=30), ShareFact("camera=cam-1", T, T, 5, 5, 0, 5)]
    by_key = {(e.rule, e.subject.key): e for e in evaluate(AlertFacts(now=T, shares=share), AlertSettings())}
    flagged = by_key[("flagged_share", "all")]
    assert flagged.decision == "firing" and abs(flagged.value - 30 / 90) < 1e-12 and flagged.threshold == 0.3
    assert by_key[("flagged_share", "slice=camera=cam-1")].decision == "no_data"
    assert by_key[("error_rate", "all")].decision == "firing" and by_key[("error_rate", "all")].value == 0.1
    assert ("error_rate", "slice=camera=cam-1") not in by_key


def test_silence_and_heartbeat_rules() -> None:
    facts = AlertFacts(now=T, sources=[SourceFact("gate", T - dt.timedelta(minutes=61)),
                                       SourceFact("yard", T - dt.timedelta(minutes=59))],
                       heartbeats=[HeartbeatFact("w1", "h", "running", T - dt.timedelta(seconds=61)),
                                   HeartbeatFact("w2", "h", "stopped", T - dt.timedelta(hours=2))])
    decisions = {e.subject.key: e.decision for e in evaluate(facts, AlertSettings(), dead_after_seconds=60)}
    assert decisions == {"target=source gate": "firing", "target=source yard": "ok",
                         "target=worker w1": "firing", "target=worker w2": "ok"}


def test_plan_dedupes_cools_down_and_respects_silence() -> None:
    [firing] = evaluate(AlertFacts(now=T, drift=[_drift(0, True)]), AlertSettings())
    [ok] = evaluate(AlertFacts(now=T, drift=[_drift(0, False)]), AlertSettings())
    key = ("drift", firing.subject.key)
    hour = dt.timedelta(hours=1)

    def stored(state: str, notified: bool, last: dt.datetime | None, silenced: dt.datetime | None = None) -> dict:
        return {key: StoredAlert(1, "drift", key[1], state, T, notified, last, silenced)}

    assert [(t.change, t.notify) for t in plan([firing], {}, T, hour)] == [("fire", True)]
    assert [(t.change, t.notify) for t in plan([firing], stored("firing", True, T), T, hour)] == [("refresh", False)]
    assert [(t.change, t.notify) for t in plan([ok], stored("firing", True, T), T, hour)] == [("resolve", True)]
    assert [(t.change, t.notify) for t in plan([ok], stored("firing", False, None), T, hour)] == [("resolve", False)]
    assert plan([ok], stored("resolved", True, T), T, hour) == []
    assert [t.notify for t in plan([firing], stored("resolved", True, T - 30 * dt.timedelta(minutes=1)), T, hour)] \
        == [False]  # cooldown
    assert [t.notify for t in plan([firing], stored("resolved", True, T - 2 * hour), T, hour)] == [True]
    silenced = plan([firing], stored("resolved", True, None, T + hour), T, hour)
    assert [(t.notify, t.silenced_until) for t in silenced] == [(False, T + hour)]  # carried to the new episode

    def seen(last_firing: dt.datetime) -> dict:  # firing, last said firing at ``last_firing``
        return {key: StoredAlert(1, "drift", key[1], "firing", T - hour, True, T - hour, None, last_firing)}

    hold = dt.timedelta(minutes=15)
    assert plan([ok], seen(T - dt.timedelta(minutes=5)), T, hour, hold) == []  # held: ok for 5 of 15 minutes
    assert [t.change for t in plan([ok], seen(T - dt.timedelta(minutes=15)), T, hour, hold)] == ["resolve"]
    assert [t.change for t in plan([firing], seen(T - dt.timedelta(minutes=5)), T, hour, hold)] == ["refresh"]


def test_every_rule_is_registered_with_a_settings_section() -> None:
    for key in RULES:
        assert getattr(AlertSettings(), key).enabled
