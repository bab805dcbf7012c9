"""The firing-alerts banner on every page and the Alerts page (acknowledge, silence, history), through
streamlit.testing's AppTest on a database with alerts stored by the worker's own code path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from camwatch.alerts.rules import Evaluation, Subject
from camwatch.alerts.state import plan
from dashboard.alerts_ui import banner_text
from db import make_engine
from db.alerts import apply_transitions, stored_alerts
from db.models_alerts import Alert
from db.models_ops import AuditEvent
from tests.support import REPO
from tests.support.databases import migrated_engine

APP = str(REPO / "dashboard" / "app.py")
SUMMARY = "camera=[cam-2](https://evil.example): energy outside object rose from 0.24 to 0.61"


@pytest.fixture()
def url(tmp_path: Path) -> str:
    with migrated_engine("sqlite", tmp_path) as engine:
        fire = [Evaluation("drift", Subject("energy_outside", -1, "camera=cam-2"), 0.001, 0.05, "firing", SUMMARY),
                Evaluation("source_silent", Subject(target="source gate"), 7200.0, 3600.0, "firing", "source gate: "
                           "no new image for 2.0 h")]
        apply_transitions(engine, plan(fire, stored_alerts(engine), dt.datetime.now(dt.UTC), dt.timedelta(hours=1)))
        return engine.url.render_as_string(hide_password=False)


def _open(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str | None = None) -> AppTest:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CAMWATCH_DB", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_banner_on_every_page_shows_summaries_as_literal_text(url: str, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    for page in (None, "app_pages/health.py", "app_pages/alerts.py"):
        at = _open(url, monkeypatch, tmp_path, page)
        banner = at.warning[0].value
        assert banner.startswith("**2 alerts firing**")
        assert "\\[cam\\-2\\]\\(https" in banner and "](https" not in banner  # no live link from a tag value


def test_alerts_page_acknowledges_and_silences_with_audit_events(url: str, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    at = _open(url, monkeypatch, tmp_path, "app_pages/alerts.py")
    assert [t.value for t in at.title] == ["Alerts"]
    assert len(at.dataframe) == 2  # firing now, history
    first = at.selectbox(key="alert_pick").value
    next(b for b in at.button if b.label == "Acknowledge").click().run()
    at.selectbox(key="alert_silence_span").set_value("1 day").run()
    next(b for b in at.button if b.label == "Silence").click().run()
    assert not at.exception
    engine = make_engine(url)
    with engine.connect() as conn:
        row = conn.execute(select(Alert.acknowledged_by, Alert.acknowledged_at, Alert.silenced_until)
                           .where(Alert.id == first)).one()
        events = conn.execute(select(AuditEvent.action, AuditEvent.actor, AuditEvent.details)
                              .order_by(AuditEvent.id)).all()
    engine.dispose()
    assert row.acknowledged_by == "local (no login)" and row.acknowledged_at is not None
    left = row.silenced_until - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23) < left <= dt.timedelta(hours=24)
    assert [e.action for e in events] == ["alert.ack", "alert.silence"]
    assert events[0].details["alert_id"] == first and events[1].details["until"] == row.silenced_until.isoformat()


def test_banner_text() -> None:
    assert banner_text(pd.DataFrame(columns=["rule", "summary", "acknowledged_at"])) is None
    frame = pd.DataFrame({"rule": ["drift"] * 5, "summary": [f"s{i}" for i in range(5)],
                          "acknowledged_at": [None] * 5})
    text = banner_text(frame) or ""
    assert text.count("\n- ") == 4 and text.endswith("- … and 2 more")
