"""Each alert rule against a real database and a real local webhook receiver: it fires (one notice), stays
firing without a second notice (deduplicated), resolves (a 'resolved' notice), fires again within the
cooldown without a notice, and notifies again once the cooldown has passed."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from camwatch.alerts.rules import RULES
from camwatch.settings import Settings, load_settings
from db.alert_facts import drift_facts
from db.alerts import alert_history, stored_alerts
from db.models import Reference
from db.session import session_scope, write_transaction
from db.writes import get_or_create_model_version
from tests.support.alerting import SCENARIOS, T0, Clock, add_drift_window, model_version, reference
from tests.support.databases import migrated_engine
from tests.support.receivers import webhook_receiver
from worker.service.alerting import AlertService

STEP_MINUTES = 70  # > the 60 min share window: each step's images are the newest window on their own
COOLDOWN_MINUTES = 180


def only(rule: str, **alerts: object) -> Settings:
    rules = {key: {"enabled": key == rule} for key in RULES}
    return load_settings(db="sqlite://", alerts={**rules, "cooldown_minutes": COOLDOWN_MINUTES, "backoff_seconds": 0.05,
                                                 "flagged_share": {"enabled": rule == "flagged_share", "max_share": 0.3},
                                                 **alerts}, dead_after_seconds=60, heartbeat_seconds=5)


def test_every_rule_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(RULES)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("rule", list(RULES))
def test_rule_fires_dedupes_resolves_and_cools_down(rule: str, kind: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[rule]
    clock = Clock()
    with migrated_engine(kind, tmp_path) as engine, webhook_receiver() as hook:
        settings = only(rule, webhook_url=hook.url)
        service = AlertService(settings, engine, "w-test", clock=clock)
        try:
            def notices() -> list[str]:
                return [r.body["status"] for r in hook.received if r.body["subject"]["key"] == scenario.subject]

            def step(make: object, expected: str) -> None:
                before = len(notices())
                make(engine, clock)  # type: ignore[operator]
                service.tick(force=True)
                mine = [e for e in service.evaluations if e.subject.key == scenario.subject]
                assert mine, [e.subject.key for e in service.evaluations]
                assert all(e.value is not None and e.threshold is not None for e in mine)
                deadline = time.monotonic() + 5
                while len(notices()) == before and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert notices()[before:] == [expected]

            step(scenario.bad, "firing")
            assert notices() == ["firing"]
            state = stored_alerts(engine)[(rule, scenario.subject)]
            assert state.state == "firing" and state.notified_firing
            first = hook.received[-1].body
            assert first["rule"] == rule and first["threshold"] is not None and first["summary"]
            assert first["links"]["alerts"].endswith("/alerts")

            clock.advance(minutes=5)
            scenario.bad(engine, clock)
            service.tick(force=True)  # still firing: refreshed, no second notice
            hook.wait(2, timeout=0.5)
            assert notices() == ["firing"]

            clock.advance(minutes=STEP_MINUTES)
            step(scenario.good, "resolved")
            assert notices() == ["firing", "resolved"]

            clock.advance(minutes=STEP_MINUTES)  # fires again within the cooldown: stored, not notified
            scenario.bad(engine, clock)
            service.tick(force=True)
            hook.wait(3, timeout=0.5)
            assert notices() == ["firing", "resolved"]
            assert stored_alerts(engine)[(rule, scenario.subject)].state == "firing"

            clock.advance(minutes=STEP_MINUTES)
            scenario.good(engine, clock)
            service.tick(force=True)  # resolves silently: its firing was never told
            clock.advance(minutes=STEP_MINUTES)  # now past the cooldown since the first notice
            step(scenario.bad, "firing")
            assert notices() == ["firing", "resolved", "firing"]
            history = alert_history(engine, rule=rule)
            mine = history[history["subject_key"] == scenario.subject]
            assert list(mine["state"]) == ["firing", "resolved", "resolved"]  # three episodes, newest first
        finally:
            service.close()


def test_silence_suppresses_notices_and_carries_over(tmp_path: Path) -> None:
    from db.alerts import silence

    scenario, clock = SCENARIOS["heartbeat_missing"], Clock()
    with migrated_engine("sqlite", tmp_path) as engine, webhook_receiver() as hook:
        service = AlertService(only("heartbeat_missing", webhook_url=hook.url, cooldown_minutes=0), engine, "w",
                               clock=clock)
        try:
            scenario.bad(engine, clock)
            service.tick(force=True)
            assert len(hook.wait(1)) == 1
            alert_id = stored_alerts(engine)[("heartbeat_missing", scenario.subject)].id
            assert silence(engine, alert_id, clock.now + __import__("datetime").timedelta(hours=5), actor="ops",
                           client=None)
            for make in (scenario.good, scenario.bad, scenario.good):
                clock.advance(minutes=10)
                make(engine, clock)
                service.tick(force=True)
            hook.wait(2, timeout=0.5)
            assert len(hook.received) == 1  # resolved, fired again, resolved: all silenced
        finally:
            service.close()


def test_secrets_never_reach_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with migrated_engine("sqlite", tmp_path) as engine, webhook_receiver(status=500) as hook:
        settings = only("heartbeat_missing", webhook_url=hook.url, max_attempts=2)
        caplog.set_level(logging.DEBUG)
        service = AlertService(settings, engine, "w", clock=clock)
        SCENARIOS["heartbeat_missing"].bad(engine, clock)
        service.tick(force=True)
        service.close()
        assert hook.requests == 2  # tried, failed (HTTP 500), retried once, dropped
        assert "s3cr3t-token" not in caplog.text and "/hook" not in caplog.text
        assert "HTTP 500" in caplog.text and "/…" in caplog.text
        assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())


def test_a_window_with_too_few_images_neither_resolves_nor_hides_a_drift_alert(tmp_path: Path) -> None:
    """A new day window still filling (``not_enough_data``) says nothing: the newest full window decides."""
    clock = Clock()
    with migrated_engine("sqlite", tmp_path) as engine, webhook_receiver() as hook:
        service = AlertService(only("drift", webhook_url=hook.url, resolve_after_minutes=0), engine, "w",
                               clock=clock)
        ref = reference(engine)
        for days in (3, 2, 1):  # drifted since three days ago
            add_drift_window(engine, ref, clock.now - dt.timedelta(days=days), True, slice_name="camera=cam-2")
        add_drift_window(engine, ref, clock.now, False, slice_name="camera=cam-2", too_few=True)
        add_drift_window(engine, ref, clock.now, False, slice_name="camera=cam-1")  # another slice's full window
        service.tick(force=True)
        firing = [a for a in stored_alerts(engine).values() if a.state == "firing"]
        assert [a.subject_key for a in firing] == ["statistic=energy_outside;slice=camera=cam-2"]
        [cam2] = [e for e in service.evaluations if e.subject.slice == "camera=cam-2"]
        assert cam2.since == clock.now - dt.timedelta(days=3) and f"since {cam2.since:%Y-%m-%d}" in cam2.summary
        clock.advance(minutes=STEP_MINUTES)
        add_drift_window(engine, ref, clock.now, False, slice_name="camera=cam-2", too_few=True)
        service.tick(force=True)
        assert [a.state for a in stored_alerts(engine).values() if "cam-2" in a.subject_key] == ["firing"]
        service.close()


def test_alerts_read_the_primary_versions_drift_not_a_shadow_models(tmp_path: Path) -> None:
    """In shadow mode the newest reference may be the shadow model's: the drift facts follow the version given."""
    with migrated_engine("sqlite", tmp_path) as engine:
        primary = model_version(engine)
        primary_ref = reference(engine)  # of the primary's version
        with session_scope(engine, write=True) as session:
            shadow = get_or_create_model_version(session, spec="shadow", weights_sha256=None, num_classes=3,
                                                 class_names=["cat", "dog", "bird"], input_size=[8, 8],
                                                 preprocessing={}, target_layer="features", method="gradcam")
        with write_transaction(engine) as conn:
            shadow_ref = conn.execute(insert(Reference).values(
                name="shadow-ref", kind="first_n", params={}, model_version_id=shadow, method="gradcam",
                built_at=T0 + dt.timedelta(days=1), n_images=60).returning(Reference.id)).scalar_one()
            conn.execute(update(Reference).where(Reference.id == primary_ref).values(built_at=T0))
        add_drift_window(engine, primary_ref, T0, True, slice_name="camera=cam-2")
        add_drift_window(engine, shadow_ref, T0, False, slice_name="camera=cam-2")
        assert [f.drifted for f in drift_facts(engine, "day", 2, primary)] == [True]
        assert [f.drifted for f in drift_facts(engine, "day", 2, shadow)] == [False]
        assert [f.drifted for f in drift_facts(engine, "day", 2)] == [False]  # no version: the newest reference
