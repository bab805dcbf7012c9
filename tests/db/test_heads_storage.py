"""Storage of heads and targets: several heatmaps of one image (the primary one and the label's), a
multi-label prediction's positive labels, the head fields of a model version and its fingerprint, and the
multi-label class mix of a stored reference."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select

from camwatch.heads import NO_LABEL
from camwatch.settings import ReferenceSettings
from camwatch.statistics.registry import HEATMAP_KEYS
from db.claims import claim_batch
from db.models import Heatmap, ModelVersion, Prediction
from db.monitoring import ensure_reference, load_reference
from db.queries_images import heatmap_views
from db.records import HeatmapRecord, ImageResult, PredictionRecord
from db.registry import register_file
from db.results import complete_batch
from db.session import session_scope
from db.writes import get_or_create_model_version, model_fingerprint
from tests.support.databases import migrated_engine

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
MODEL: dict[str, Any] = {"spec": "hf:/models/ppe", "weights_sha256": "a" * 64, "num_classes": 3,
                         "class_names": ["helmet", "vest", "gloves"], "input_size": [224, 224],
                         "preprocessing": {"mean": [0.5] * 3, "std": [0.5] * 3}, "target_layer": "vit.layers.11",
                         "method": "gradcam"}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def _heatmap(target: int, value: float, *, primary: bool = True) -> HeatmapRecord:
    native = np.full((2, 2), value, dtype=np.float32)
    stats: dict[str, float | None] = {name: None for name in HEATMAP_KEYS} | {"centroid_x": value}
    return HeatmapRecord(method="gradcam", target_class=target, target_layer="vit.layers.11", state="ok",
                         native=native, extent=(0.0, 0.0, 1.0, 1.0), raw_max=value, raw_sum=4 * value,
                         target_logit=value, stats=stats, is_primary=primary)


def _result(image_id: int, mv: int, labels: list[int] | None, extra: list[HeatmapRecord]) -> ImageResult:
    return ImageResult(
        image_id=image_id, status="ok", width=64, height=64, format="PNG", label="vest", label_index=1,
        model_version_id=mv,
        prediction=PredictionRecord(class_index=0, confidence=0.9, topk_indices=[0, 1, 2],
                                    topk_probs=[0.9, 0.7, 0.1], topk_logits=[2.2, 0.85, -2.2], correct=True,
                                    labels=labels),
        heatmap=_heatmap(0, 0.25), extra_heatmaps=extra)


def _setup(engine: Engine, n: int, **model: Any) -> tuple[int, list[int]]:
    with session_scope(engine, write=True) as s:
        mv = get_or_create_model_version(s, **{**MODEL, **model})
        for i in range(n):
            register_file(s, uri=f"/cam/{i}.png", sha256=f"{i:064x}", size_bytes=1, mtime_ns=1, source="cam",
                          captured_at=T0 + dt.timedelta(minutes=i))
    return mv, [c.id for c in claim_batch(engine, "w1", limit=n, lease_seconds=60)]


def test_an_image_keeps_its_primary_and_label_heatmaps_and_its_positive_labels(engine: Engine) -> None:
    mv, (image_id,) = _setup(engine, 1, head="sigmoid", head_threshold=0.5, target_mode="both")
    assert complete_batch(engine, "w1", [_result(image_id, mv, [0, 1], [_heatmap(1, 0.75, primary=False)])]) == 1
    with session_scope(engine) as s:
        rows = s.execute(select(Heatmap).order_by(Heatmap.target_class)).scalars().all()
        assert [(h.target_class, h.is_primary, h.centroid_x) for h in rows] == [(0, True, 0.25), (1, False, 0.75)]
        prediction = s.get(Prediction, (image_id, mv))
        assert prediction is not None and prediction.labels == [0, 1]
        version = s.get(ModelVersion, mv)
        assert version is not None
        assert (version.head, version.head_threshold, version.target_mode) == ("sigmoid", 0.5, "both")
    views = heatmap_views(engine, image_id)
    assert [(v.target_class, v.is_primary, v.method) for v in views] == [(0, True, "gradcam"), (1, False, "gradcam")]
    np.testing.assert_array_equal(views[1].native, np.full((2, 2), 0.75, dtype=np.float32))


def test_heatmap_sets_that_break_the_table_rules_are_refused(engine: Engine) -> None:
    mv, (image_id,) = _setup(engine, 1)
    twice = _result(image_id, mv, None, [_heatmap(0, 0.5, primary=False)])
    with pytest.raises(ValueError, match="two heatmaps with the same method and target class"):
        complete_batch(engine, "w1", [twice])
    with pytest.raises(ValueError, match="extra heatmaps cannot be primary"):
        complete_batch(engine, "w1", [_result(image_id, mv, None, [_heatmap(1, 0.5, primary=True)])])
    secondary = dataclasses.replace(_result(image_id, mv, None, []), heatmap=_heatmap(0, 0.5, primary=False))
    with pytest.raises(ValueError, match="must be the primary heatmap"):
        complete_batch(engine, "w1", [secondary])


def test_fingerprints_of_softmax_top1_versions_did_not_change() -> None:
    """Versions registered before heads existed keep their fingerprint: the canonical JSON of the 8 fields."""
    canonical = json.dumps(MODEL, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert model_fingerprint(**MODEL) == hashlib.sha256(canonical.encode()).hexdigest()
    others = {model_fingerprint(**MODEL, head="sigmoid", head_threshold=0.5),
              model_fingerprint(**MODEL, head="sigmoid", head_threshold=0.6),
              model_fingerprint(**MODEL, target_mode="label"), model_fingerprint(**MODEL, head="binary")}
    assert len(others) == 4 and model_fingerprint(**MODEL) not in others


def test_threshold_is_kept_for_sigmoid_heads_only(engine: Engine) -> None:
    with session_scope(engine, write=True) as s:
        softmax = get_or_create_model_version(s, **MODEL, head="softmax", head_threshold=0.5)
        assert softmax == get_or_create_model_version(s, **MODEL)  # the threshold means nothing here
        row = s.get(ModelVersion, softmax)
        assert row is not None and (row.head, row.head_threshold, row.target_mode) == ("softmax", None, "top1")


def test_stored_reference_keeps_the_multi_label_class_mix(engine: Engine) -> None:
    mv, ids = _setup(engine, 4, head="sigmoid", head_threshold=0.5)
    labels = [[0, 1], [0], [], [0, 2]]
    complete_batch(engine, "w1", [_result(i, mv, ls, []) for i, ls in zip(ids, labels, strict=True)])
    handle = ensure_reference(engine, ReferenceSettings(first_n=4), mv, "gradcam")
    assert handle is not None
    expected = {0: 3, 1: 1, 2: 1, NO_LABEL: 1}
    assert handle.summary.label_counts == expected and handle.summary.class_counts == {0: 4}
    with engine.connect() as conn:
        assert load_reference(conn, handle.id).label_counts == expected
