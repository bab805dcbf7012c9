"""The incremental drift pass's queries: the drift state round-trips and counts passes, and on SQLite each
query is a range of an index led by the model version (not a scan of every image through the status index,
whose cost would grow with history)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import insert, text

from db.drift_incremental import read_drift_state, since_statement, window_statement, write_drift_state
from db.migrate import upgrade
from db.models import Reference
from db.session import make_engine, session_scope
from db.writes import get_or_create_model_version

T = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _plan(engine, stmt) -> str:  # type: ignore[no-untyped-def]
    compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        return " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))


def test_queries_use_the_model_version_indexes_and_the_state_round_trips(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    assert "ix_images_model_version_id_processed_at" in _plan(engine, since_statement(1, T))
    window = _plan(engine, window_statement(1, T, T + dt.timedelta(days=1)))
    assert "ix_images_model_version_id_captured_at" in window and "status" not in window
    with session_scope(engine, write=True) as session:
        mv = get_or_create_model_version(session, spec="m", weights_sha256="0" * 64, num_classes=2,
                                         class_names=["a", "b"], input_size=[8, 8], preprocessing={},
                                         target_layer="x", method="gradcam")
    with engine.begin() as conn:
        ref = conn.execute(insert(Reference).values(name="r", kind="first_n", params={}, model_version_id=mv,
                                                    method="gradcam", created_at=T, n_images=0)
                           .returning(Reference.id)).scalar_one()
    assert read_drift_state(engine, ref, "day") is None
    for passes, windows in ((1, 4), (2, 1)):
        write_drift_state(engine, ref, "day", watermark=T + dt.timedelta(hours=passes), reference_built_at=T,
                          settings_key="k", windows=windows)
        state = read_drift_state(engine, ref, "day")
        assert state is not None and state.passes == passes and state.windows_last_pass == windows
        assert state.watermark == T + dt.timedelta(hours=passes) and state.reference_built_at == T
