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


def test_a_shadow_versions_images_are_found_by_its_results(tmp_path: Path) -> None:
    """Images processed by v1 as the primary model and by v2 as a shadow: v2's images are those holding a
    v2 result (``by_results``), found from the capture- and processing-time indexes."""
    from db.drift_incremental import latest_processed_at, of_version, processed_since, window_image_ids
    from db.models import Image, Prediction
    from db.monitoring import processed_index

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    with session_scope(engine, write=True) as session:
        v1, v2 = (get_or_create_model_version(session, spec=s, weights_sha256=s * 64, num_classes=2,
                                              class_names=["a", "b"], input_size=[8, 8], preprocessing={},
                                              target_layer="x", method="gradcam") for s in ("1", "2"))
    with engine.begin() as conn:
        for i in range(1, 7):  # images 1..6 primary v1; 2, 4, 6 also have a v2 (shadow) result
            at = T + dt.timedelta(hours=i)
            conn.execute(insert(Image).values(id=i, sha256=f"{i:064x}", uri=f"/d/{i}.jpg", source="s", size_bytes=1,
                                              captured_at=at, first_seen_at=at, processed_at=at, status="ok",
                                              attempts=1, model_version_id=v1, tags={}))
            for mv in (v1, v2) if i % 2 == 0 else (v1,):
                conn.execute(insert(Prediction).values(image_id=i, model_version_id=mv, class_index=0, confidence=0.9,
                                                       topk_indices=[0], topk_probs=[0.9], topk_logits=[1.0]))
    assert [r.id for r in processed_index(engine, v2)] == []  # v2 was never the primary
    assert [r.id for r in processed_index(engine, v2, by_results=True)] == [2, 4, 6]
    assert [r.id for r in processed_index(engine, v1, by_results=True)] == [1, 2, 3, 4, 5, 6]
    assert window_image_ids(engine, v2, T, T + dt.timedelta(hours=4, minutes=30), by_results=True) == [2, 4]
    assert [c for c, _ in processed_since(engine, v2, T + dt.timedelta(hours=3), by_results=True)] == [
        T + dt.timedelta(hours=4), T + dt.timedelta(hours=6)]
    assert latest_processed_at(engine, v2, by_results=True) == T + dt.timedelta(hours=6)
    assert "ix_images_processed_at" in _plan(engine, since_statement(v2, T, by_results=True))
    window = _plan(engine, window_statement(v2, T, T + dt.timedelta(days=1), by_results=True))
    assert "ix_images_captured_at " in window and "status" not in window and "sqlite_autoindex_predictions_1" in window
    assert str(of_version(v2)) != str(of_version(v2, by_results=True))
