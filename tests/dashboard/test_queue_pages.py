"""Queue sources in the dashboard: the Health page's queue section (backlog, in-flight events, dead letters,
stale and disconnected consumers) and the deployed model's prediction on the Image page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from camwatch.settings import load_settings
from dashboard.state import image_roots
from db.export import iter_rows
from db.migrate import upgrade
from db.models import Image, Prediction
from db.models_ops import QueueStatus
from db.queue_status import QueueReport, write_queue_status
from db.session import make_engine, write_transaction
from demo.synthetic.fill import fill_database
from tests.support import REPO


def _report(source: str, consumer: str, **kw: object) -> QueueReport:
    fields: dict = {"worker_id": "w", "kind": "redis", "location": "redis://h/0?stream=s", "state": "connected",
                    "lag": 40, "pending": 2, "in_flight": 2, "max_in_flight": 64, "dead_letters": 3, "received": 10,
                    "acknowledged": 8, "dead_lettered": 3, "duplicates": 1, **kw}
    return QueueReport(source=source, consumer=consumer, **fields)


def _page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, page: str = "health",
          image: int | None = None) -> AppTest:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CAMWATCH_DB", url)
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60)
    if image is not None:
        at.query_params["image"] = str(image)
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
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
    at = _page(monkeypatch, tmp_path, url)
    assert "Queues" in [s.value for s in at.subheader]
    assert _metric(at, "Queue backlog") == "42"  # Redis: lag 40 + pending 2 of the group; MQTT reports no lag
    assert _metric(at, "In flight") == "14" and _metric(at, "Dead letters") == "3"
    assert any("1 queue consumer(s) stopped reporting" in w.value for w in at.warning)
    assert any("1 queue consumer(s) cannot reach their broker" in e.value for e in at.error)
    summary, consumers = at.dataframe[-2].value, at.dataframe[-1].value
    assert sorted(summary["source"]) == ["mqtt:camwatch/images/#", "redis:camwatch.images"]
    assert sorted(consumers["status"]) == ["connected", "disconnected", "stale"]


def test_without_queue_sources_the_section_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _page(monkeypatch, tmp_path, f"sqlite:///{tmp_path / 'cw.db'}")
    assert any("No queue source" in c.value for c in at.caption)
    assert not any(m.label == "Queue backlog" for m in at.metric)


def test_the_image_page_says_whether_the_deployed_model_agrees(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    fill_database(url, 40, seed=1, days=2, cameras=2, reference_size=10, pending=0)
    engine = make_engine(url)
    with engine.connect() as conn:
        (a, a_class), (b, b_class) = conn.execute(select(Prediction.image_id, Prediction.class_index)
                                                  .order_by(Prediction.image_id).limit(2)).all()
    with write_transaction(engine) as conn:
        conn.execute(update(Image).where(Image.id == a).values(deployed_class_index=a_class, deployed_score=0.9))
        conn.execute(update(Image).where(Image.id == b).values(deployed_class_index=(b_class + 1) % 5))
    engine.dispose()
    agrees = _page(monkeypatch, tmp_path, url, "image", a)
    assert any("Deployed model:" in c.value and "(0.90); the monitor's top-1 agrees" in c.value for c in agrees.caption)
    differs = _page(monkeypatch, tmp_path, url, "image", b)
    assert any("the monitor's top-1 **disagrees**" in c.value for c in differs.caption)
    rows = {r["image_id"]: r for r in iter_rows(make_engine(url), with_heatmap=False)}
    assert (rows[a]["deployed_class_index"], rows[a]["deployed_score"]) == (a_class, 0.9)
    other = next(i for i in rows if i not in (a, b))
    assert rows[other]["deployed_class_index"] is None  # images that no event described


def test_dashboard_reads_originals_from_folders_or_the_spool_and_allowed_roots() -> None:
    folders = load_settings(source=["/data/a", "file:///data/b"])
    assert image_roots(folders) == [Path("/data/a"), Path("/data/b")]
    queues = load_settings(source=["/data/a", "redis://h/0"], allowed_roots=["/data/feed"],
                           queue={"spool_dir": "/var/spool/cw"})
    assert image_roots(queues) == [Path("/data/a"), Path("/var/spool/cw"), Path("/data/feed")]
