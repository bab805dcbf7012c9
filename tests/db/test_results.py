"""complete_batch and the small writes: model versions, heartbeats, reviews, drift results."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, update

from camwatch.statistics.registry import HEATMAP_KEYS
from db.claims import claim_batch
from db.codec import decode_heatmap
from db.models import (
    DriftResult,
    Flag,
    Heatmap,
    Image,
    ImageTag,
    Prediction,
    Reference,
    Review,
)
from db.models_ops import WorkerHeartbeat
from db.records import DriftResultRecord, FlagRecord, HeatmapRecord, ImageResult, PredictionRecord
from db.registry import register_file
from db.results import complete_batch
from db.session import session_scope, write_transaction
from db.writes import add_review, get_or_create_model_version, upsert_drift_results, write_heartbeat
from tests.support.databases import migrated_engine

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
MODEL: dict[str, Any] = {"spec": "efficientnet-lite0", "weights_sha256": "f" * 64, "num_classes": 3,
         "class_names": ["cat", "dog", "fox"], "input_size": [224, 224],
         "preprocessing": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}, "target_layer": "features",
         "method": "cam"}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def _model_version(engine: Engine) -> int:
    with session_scope(engine, write=True) as s:
        return get_or_create_model_version(s, **MODEL)


def _register(engine: Engine, n: int) -> None:
    with session_scope(engine, write=True) as s:
        for i in range(n):
            register_file(s, uri=f"/cam/{i}.jpg", sha256=f"{i:064x}", size_bytes=1, mtime_ns=1, source="cam",
                          captured_at=T0)


def _result(image_id: int, mv: int, *, value: float = 0.25) -> ImageResult:
    native = np.arange(12, dtype=np.float32).reshape(3, 4) * value
    stats: dict[str, float | None] = {name: float(k) / 10 for k, name in enumerate(HEATMAP_KEYS)}
    stats["cam_box_iou"] = float("nan")
    return ImageResult(
        image_id=image_id, status="ok", width=640, height=480, format="JPEG",
        captured_at=T0 + dt.timedelta(hours=1), label="dog", label_index=1,
        region={"boxes": [[10.0, 20.0, 110.0, 220.0]], "source": "sidecar-json"},
        tags={"camera": "c3", "site": "north"}, thumbnail=b"\xff\xd8jpeg", model_version_id=mv,
        prediction=PredictionRecord(class_index=1, confidence=0.8, topk_indices=[1, 0, 2],
                                    topk_probs=[0.8, 0.15, 0.05], topk_logits=[3.0, 1.3, 0.2], correct=True),
        heatmap=HeatmapRecord(method="cam", target_class=1, target_layer="features", state="ok", native=native,
                              extent=(0.0, 0.0, 640.0, 480.0), raw_max=float(native.max()),
                              raw_sum=float(native.sum()), target_logit=3.0, stats=stats),
        flags=[FlagRecord(rule="energy_outside", value=0.9, threshold=0.7)],
    )


def test_complete_batch_writes_every_part(engine: Engine) -> None:
    mv = _model_version(engine)
    _register(engine, 2)
    claimed = claim_batch(engine, "w1", limit=2, lease_seconds=60)
    ok = _result(claimed[0].id, mv)
    failed = ImageResult(image_id=claimed[1].id, status="error", error="cannot decode /cam/1.jpg: truncated")
    assert complete_batch(engine, "w1", [ok, failed]) == 2

    with session_scope(engine) as s:
        image = s.get(Image, ok.image_id)
        assert image is not None
        assert (image.status, image.width, image.height, image.format, image.label, image.label_index) == \
            ("ok", 640, 480, "JPEG", "dog", 1)
        assert image.captured_at == T0 + dt.timedelta(hours=1) and image.processed_at is not None
        assert image.lease_until is None and image.model_version_id == mv and image.thumbnail == b"\xff\xd8jpeg"
        assert image.region == ok.region and image.tags == {"camera": "c3", "site": "north"}
        tags = s.execute(select(ImageTag.key, ImageTag.value).where(ImageTag.image_id == ok.image_id)).all()
        assert sorted(tuple(t) for t in tags) == [("camera", "c3"), ("site", "north")]
        prediction = s.get(Prediction, (ok.image_id, mv))
        assert prediction is not None
        assert (prediction.class_index, prediction.confidence, prediction.topk_probs, prediction.correct) == \
            (1, 0.8, [0.8, 0.15, 0.05], True)
        heatmap = s.execute(select(Heatmap)).scalar_one()
        assert (heatmap.grid_h, heatmap.grid_w, heatmap.is_primary, heatmap.state) == (3, 4, True, "ok")
        assert ok.heatmap is not None
        np.testing.assert_array_equal(decode_heatmap(heatmap.data, 3, 4), ok.heatmap.native)  # exact in float16
        assert heatmap.extent == [0.0, 0.0, 640.0, 480.0] and heatmap.raw_max == pytest.approx(2.75)
        assert heatmap.centroid_x == 0.0 and heatmap.cam_box_y1 == pytest.approx(1.7)
        assert heatmap.cam_box_iou is None  # non-finite statistic stored as NULL
        flag = s.execute(select(Flag)).scalar_one()
        assert (flag.image_id, flag.rule, flag.value, flag.threshold) == (ok.image_id, "energy_outside", 0.9, 0.7)
        error_row = s.get(Image, failed.image_id)
        assert error_row is not None
        assert (error_row.status, error_row.error) == ("error", "cannot decode /cam/1.jpg: truncated")
        assert error_row.captured_at == T0


def test_complete_batch_skips_rows_another_worker_took_over(engine: Engine) -> None:
    mv = _model_version(engine)
    _register(engine, 2)
    mine = claim_batch(engine, "w1", limit=2, lease_seconds=60)
    with write_transaction(engine) as conn:  # w1's lease on the first image expired and w2 took it
        conn.execute(update(Image).where(Image.id == mine[0].id).values(claimed_by="w2"))
    assert complete_batch(engine, "w1", [_result(mine[0].id, mv), _result(mine[1].id, mv)]) == 1
    with session_scope(engine) as s:
        assert s.get(Image, mine[0].id).status == "processing"  # type: ignore[union-attr]
        assert s.execute(select(Prediction.image_id)).scalars().all() == [mine[1].id]
        assert s.execute(select(Heatmap.image_id)).scalars().all() == [mine[1].id]
    assert complete_batch(engine, "w1", [_result(mine[1].id, mv)]) == 0  # finished rows are not rewritten


def test_reprocessing_replaces_earlier_results(engine: Engine) -> None:
    mv = _model_version(engine)
    _register(engine, 1)
    (claimed,) = claim_batch(engine, "w1", limit=1, lease_seconds=60)
    complete_batch(engine, "w1", [_result(claimed.id, mv)])
    with write_transaction(engine) as conn:  # e.g. an operator queued the image again
        conn.execute(update(Image).values(status="pending"))
    (again,) = claim_batch(engine, "w2", limit=1, lease_seconds=60)
    second = dataclasses.replace(_result(again.id, mv, value=0.5), tags={"camera": "c4"}, flags=[])
    assert complete_batch(engine, "w2", [second]) == 1
    with session_scope(engine) as s:
        assert s.execute(select(func.count()).select_from(Heatmap)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Flag)).scalar_one() == 0
        assert s.execute(select(ImageTag.key, ImageTag.value)).all() == [("camera", "c4")]
        assert s.execute(select(Heatmap.raw_max)).scalar_one() == pytest.approx(5.5)


def test_complete_batch_refuses_invalid_results_before_writing(engine: Engine) -> None:
    mv = _model_version(engine)
    _register(engine, 1)
    (claimed,) = claim_batch(engine, "w1", limit=1, lease_seconds=60)
    good = _result(claimed.id, mv)
    assert good.heatmap is not None
    bad_stats = dataclasses.replace(good.heatmap, stats={"centroid": 0.5})
    with pytest.raises(ValueError, match=r"unknown heatmap statistics \['centroid'\]"):
        complete_batch(engine, "w1", [dataclasses.replace(good, heatmap=bad_stats)])
    with pytest.raises(ValueError, match="result status must be one of"):
        complete_batch(engine, "w1", [dataclasses.replace(good, status="done")])
    with pytest.raises(ValueError, match="more than once"):
        complete_batch(engine, "w1", [good, good])
    with session_scope(engine) as s:
        assert s.get(Image, claimed.id).status == "processing"  # type: ignore[union-attr]


def test_model_version_is_created_once_per_fingerprint(engine: Engine) -> None:
    first = _model_version(engine)
    assert _model_version(engine) == first
    with session_scope(engine, write=True) as s:
        other = get_or_create_model_version(s, **{**MODEL, "target_layer": "features.6"})
    assert other != first
    with pytest.raises(ValueError, match="2 class names for num_classes=3"), session_scope(engine, write=True) as s:
        get_or_create_model_version(s, **{**MODEL, "class_names": ["a", "b"]})


def test_heartbeat_upsert_keeps_started_at(engine: Engine) -> None:
    write_heartbeat(engine, worker_id="w1", hostname="h", pid=1, state="starting", source="cam")
    with session_scope(engine) as s:
        started = s.get(WorkerHeartbeat, "w1").started_at  # type: ignore[union-attr]
    write_heartbeat(engine, worker_id="w1", hostname="h", pid=1, state="running", source="cam", processed=42,
                    errors=1, images_per_s=12.5)
    with session_scope(engine) as s:
        beat = s.get(WorkerHeartbeat, "w1")
        assert beat is not None
        assert (beat.state, beat.processed, beat.errors, beat.images_per_s) == ("running", 42, 1, 12.5)
        assert beat.started_at == started and beat.last_seen_at >= started
    with pytest.raises(ValueError, match="state must be one of"):
        write_heartbeat(engine, worker_id="w1", hostname="h", pid=1, state="dead")


def test_reviews_validate_the_verdict(engine: Engine) -> None:
    _register(engine, 1)
    with session_scope(engine, write=True) as s:
        review_id = add_review(s, 1, "false_alarm", "the box is wrong", "ana")
    with session_scope(engine) as s:
        review = s.get(Review, review_id)
        assert review is not None and (review.verdict, review.reviewer) == ("false_alarm", "ana")
    with pytest.raises(ValueError, match="verdict must be one of"), session_scope(engine, write=True) as s:
        add_review(s, 1, "looks_fine", None, "ana")


def test_drift_results_upsert_on_their_key(engine: Engine) -> None:
    mv = _model_version(engine)
    with session_scope(engine, write=True) as s:
        reference = Reference(name="first-1000", kind="first_n", params={"n": 1000}, model_version_id=mv,
                              method="cam")
        s.add(reference)
        s.flush()
        row = DriftResultRecord(reference_id=reference.id, window_kind="day", window_start=T0,
                                window_end=T0 + dt.timedelta(days=1), statistic="entropy", class_index=-1,
                                test="ks", score=0.2, threshold=0.05, drifted=False, n_reference=1000,
                                n_current=80)
        assert upsert_drift_results(s, [row, dataclasses.replace(row, test="wasserstein", score=0.01)]) == 2
    with session_scope(engine, write=True) as s:
        upsert_drift_results(s, [dataclasses.replace(row, score=0.01, drifted=True, n_current=95)])
    with session_scope(engine) as s:
        stored = s.execute(select(DriftResult).where(DriftResult.test == "ks")).scalar_one()
        assert (stored.score, stored.drifted, stored.n_current) == (0.01, True, 95)
        assert s.execute(select(func.count()).select_from(DriftResult)).scalar_one() == 2
    with pytest.raises(ValueError, match="window_kind"), session_scope(engine, write=True) as s:
        upsert_drift_results(s, [dataclasses.replace(row, window_kind="week")])


def test_non_finite_model_outputs_are_stored_as_null(engine: Engine) -> None:
    """One NaN output must not fail the batch: PostgreSQL's JSON rejects NaN, SQLite turns it into NULL."""
    mv = _model_version(engine)
    _register(engine, 1)
    (claimed,) = claim_batch(engine, "w1", limit=1, lease_seconds=60)
    nan = float("nan")
    broken = PredictionRecord(class_index=0, confidence=nan, topk_indices=[0, 1], topk_probs=[nan, nan],
                              topk_logits=[nan, float("inf")])
    assert complete_batch(engine, "w1", [dataclasses.replace(_result(claimed.id, mv), prediction=broken)]) == 1
    with session_scope(engine) as s:
        stored = s.get(Prediction, (claimed.id, mv))
        assert stored is not None
        assert (stored.confidence, stored.topk_probs, stored.topk_logits) == (None, [None, None], [None, None])
