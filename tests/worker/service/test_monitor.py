"""Incremental drift passes: a pass recomputes only the windows holding images processed since the last
one, a restarted worker goes on incrementally, and a rebuilt reference, changed settings or ``full``
recompute everything."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from camwatch.settings import Settings
from db.drift_incremental import read_drift_state
from db.models import DriftResult, Image
from db.monitoring import ensure_reference
from db.session import make_engine
from demo.synthetic.fill import fill_database
from demo.synthetic.grow import append_batch
from worker.service.monitor import drift_pass, recompute_drift

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("monitor") / "stream.db"
    fill_database(f"sqlite:///{path}", 1600, seed=5, start=START, days=4, cameras=4, sites=2, review_share=0.0,
                  pending=0)
    return path


@pytest.fixture
def url(stream: Path, tmp_path: Path) -> str:
    copy = tmp_path / "db.sqlite"
    copy.write_bytes(stream.read_bytes())
    return f"sqlite:///{copy}"


def _settings(**drift: object) -> Settings:
    return Settings(drift={"watermark_overlap_seconds": 0, **drift})  # type: ignore[arg-type]


def _day(n: int) -> dt.datetime:
    return START + dt.timedelta(days=n)


def test_a_pass_recomputes_only_the_windows_touched_since_the_last_one(url: str) -> None:
    engine = make_engine(url)
    settings = _settings()
    handle = ensure_reference(engine, settings.reference, 1, "gradcam")
    assert handle is not None
    first = drift_pass(engine, settings, handle, 1)
    assert first.full and first.starts == tuple(_day(k) for k in range(4))
    assert drift_pass(engine, settings, handle, 1).starts == ()  # nothing new
    with engine.connect() as conn:
        rows_before = conn.execute(select(func.count()).select_from(DriftResult)).scalar_one()
    append_batch(url, 50, captured_from=_day(2) + dt.timedelta(hours=3), span=dt.timedelta(hours=2),
                 processed_at=dt.datetime.now(dt.UTC))
    second = drift_pass(engine, settings, handle, 1)
    assert not second.full and second.starts == (_day(2),)
    with engine.connect() as conn:
        n_current = conn.execute(select(DriftResult.n_current).where(
            DriftResult.reference_id == handle.id, DriftResult.window_start == _day(2), DriftResult.slice == "",
            DriftResult.class_index == -1, DriftResult.statistic == "entropy")).scalar_one()
        n_day = conn.execute(select(func.count()).select_from(Image).where(
            Image.status == "ok", Image.captured_at >= _day(2), Image.captured_at < _day(3))).scalar_one()
        assert conn.execute(select(func.count()).select_from(DriftResult)).scalar_one() == rows_before
    assert n_current == n_day and n_day > 50  # the day's images, the batch among them
    state = read_drift_state(engine, handle.id, "day")
    assert state is not None and state.passes == 3 and state.windows_last_pass == 1


def test_a_restarted_worker_goes_on_incrementally(url: str) -> None:
    settings = _settings()
    engine = make_engine(url)
    handle = ensure_reference(engine, settings.reference, 1, "gradcam")
    assert handle is not None and drift_pass(engine, settings, handle, 1).full
    engine.dispose()
    restarted = make_engine(url)  # a new process: nothing in memory, the state is in the database
    handle = ensure_reference(restarted, settings.reference, 1, "gradcam")
    assert handle is not None
    append_batch(url, 20, captured_from=_day(3) + dt.timedelta(hours=20), span=dt.timedelta(hours=1),
                 processed_at=dt.datetime.now(dt.UTC))
    again = drift_pass(restarted, settings, handle, 1)
    assert not again.full and again.starts == (_day(3),)


def test_new_settings_a_rebuilt_reference_or_the_command_recompute_everything(url: str) -> None:
    engine = make_engine(url)
    settings = _settings()
    handle = ensure_reference(engine, settings.reference, 1, "gradcam")
    assert handle is not None
    drift_pass(engine, settings, handle, 1)
    changed = drift_pass(engine, _settings(min_effect=0.3), handle, 1)
    assert changed.full and changed.windows == 4
    assert drift_pass(engine, _settings(min_effect=0.3), handle, 1).windows == 0
    assert recompute_drift(engine, _settings(min_effect=0.3), handle, 1, full=True) > 0
    rebuilt = type(handle)(handle.id, handle.summary, dt.datetime.now(dt.UTC))  # as ensure_reference after a rebuild
    assert drift_pass(engine, _settings(min_effect=0.3), rebuilt, 1).full


def test_count_windows_recompute_from_the_first_touched_chunk(url: str) -> None:
    engine = make_engine(url)
    settings = _settings(window="count", window_count=500)
    handle = ensure_reference(engine, settings.reference, 1, "gradcam")
    assert handle is not None
    first = drift_pass(engine, settings, handle, 1)
    assert first.full and first.windows == 4  # 1592 processed images: 3 full chunks and a partial one
    append_batch(url, 30, captured_from=_day(4), span=dt.timedelta(hours=1), processed_at=dt.datetime.now(dt.UTC))
    later = drift_pass(engine, settings, handle, 1)
    assert not later.full and later.windows == 1 and later.starts == first.starts[-1:]
