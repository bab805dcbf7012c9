"""The Health page's queue section: backlog, in-flight events, dead letters, stale and disconnected consumers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from db.migrate import upgrade
from db.models import QueueStatus
from db.queue_status import QueueReport, write_queue_status
from db.session import make_engine, write_transaction
from tests.support import REPO


def _report(source: str, consumer: str, **kw: object) -> QueueReport:
    fields: dict = {"worker_id": "w", "kind": "redis", "location": "redis://h/0?stream=s", "state": "connected",
                    "lag": 40, "pending": 2, "in_flight": 2, "max_in_flight": 64, "dead_letters": 3, "received": 10,
                    "acknowledged": 8, "dead_lettered": 3, "duplicates": 1, **kw}
    return QueueReport(source=source, consumer=consumer, **fields)


def _health(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> AppTest:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CAMWATCH_DB", url)
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_queue_backlog_in_flight_dead_letters_and_unhealthy_consumers(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    engine = make_engine(url)
    upgrade(engine)
    write_queue_status(engine, _report("redis:camwatch.images", "host-0"))
    write_queue_status(engine, _report("redis:camwatch.images", "host-1", in_flight=5, state="disconnected",
                                       last_error="ConnectionError: refused"))
    write_queue_status(engine, _report("mqtt:camwatch/images/#", "camwatch-g-host-0", kind="mqtt", lag=None,
                                       pending=7, in_flight=7, dead_letters=None))
    with write_transaction(engine) as conn:  # an MQTT consumer that stopped reporting an hour ago
        conn.execute(update(QueueStatus).where(QueueStatus.kind == "mqtt")
                     .values(updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))
    engine.dispose()
    at = _health(monkeypatch, tmp_path, url)
    assert "Queues" in [s.value for s in at.subheader]
    assert _metric(at, "Queue backlog") == "42"  # Redis: lag 40 + pending 2 of the group; MQTT reports no lag
    assert _metric(at, "In flight") == "14" and _metric(at, "Dead letters") == "3"
    assert any("1 queue consumer(s) stopped reporting" in w.value for w in at.warning)
    assert any("1 queue consumer(s) cannot reach their broker" in e.value for e in at.error)
    summary, consumers = at.dataframe[-2].value, at.dataframe[-1].value
    assert sorted(summary["source"]) == ["mqtt:camwatch/images/#", "redis:camwatch.images"]
    assert sorted(consumers["status"]) == ["connected", "disconnected", "stale"]


def test_without_queue_sources_the_section_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _health(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'cw.db'}")
    assert any("No queue source" in c.value for c in at.caption)
    assert not any(m.label == "Queue backlog" for m in at.metric)
