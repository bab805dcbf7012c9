"""The dashboard's queries (db/queries*.py) on a small hand-made database, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, insert, select

from camwatch.monitoring.flags import FLAG_RULES, evaluate_flags
from db.codec import encode_heatmap
from db.models import (
    DriftResult,
    Flag,
    Heatmap,
    Image,
    ImageTag,
    ModelVersion,
    Prediction,
    Reference,
    ReferenceHeatmap,
    ReferenceMember,
    ReferenceStat,
    Review,
)
from db.models_ops import WorkerHeartbeat
from db.queries import (
    ImageFilter,
    bucket_start,
    capture_range,
    class_mix,
    class_names,
    current_reference,
    drift_history,
    drift_slices,
    drift_statistics,
    flagged_count,
    hash_sample,
    label_accuracy,
    last_processed,
    latest_drift,
    reference_bands,
    reference_heatmaps,
    sample_rate,
    stat_time_series,
    status_counts,
    throughput,
    workers,
)
from db.queries_images import (
    FLAGGED_BELOW,
    GalleryFilter,
    add_reference_member,
    flagged_page,
    flagged_total,
    flags_of,
    image_detail,
    image_views,
    iter_heatmaps,
)
from db.queries_slices import (
    database_size,
    error_reasons,
    slice_sample,
    slice_summary,
    tag_keys,
    tag_values,
)
from tests.support.databases import migrated_engine

UTC = dt.UTC
DAY1 = dt.datetime(2025, 1, 1, tzinfo=UTC)
NOW = dt.datetime.now(UTC).replace(microsecond=0)
MAPS = {i: np.arange(4, dtype=np.float32).reshape(2, 2) + i for i in range(1, 6)}
# id: (captured, status, class, camera, border_energy, confidence)
IMAGES = {
    1: (DAY1 + dt.timedelta(minutes=10), "ok", 0, "A", 0.2, 0.9),
    2: (DAY1 + dt.timedelta(minutes=40), "ok", 1, "A", 0.4, 0.8),
    3: (DAY1 + dt.timedelta(hours=1, minutes=20), "ok", 0, "B", 0.8, 0.95),
    4: (DAY1 + dt.timedelta(hours=1, minutes=50), "ok", 0, "B", 0.9, 0.2),
    5: (DAY1 + dt.timedelta(days=1, hours=5), "ok", 2, "A", 0.1, 0.7),
    6: (DAY1 + dt.timedelta(days=1, hours=6), "error", None, "A", None, None),
    7: (DAY1 + dt.timedelta(days=1, hours=7), "error", None, None, None, None),
    8: (DAY1 + dt.timedelta(days=1, hours=8), "pending", None, None, None, None),
}
# (image, rule, value, threshold): severities 0.333 (3), 0.5 and 0.6 (4), 1.0 (5)
FLAGS = [(3, "border_energy", 0.8, 0.6), (4, "border_energy", 0.9, 0.6), (4, "low_confidence", 0.2, 0.5),
         (5, "pointing_miss", 0.0, 0.5)]


def _fill(engine: Engine) -> None:
    rows: dict[type, list[dict[str, object]]] = {table: [] for table in (Image, ImageTag, Prediction, Heatmap)}
    for i, (captured, status, cls, camera, border, confidence) in IMAGES.items():
        uri = f"/x/{i}.jpg"
        rows[Image].append({
            "id": i, "sha256": f"{i:064d}", "uri": uri, "source": "s", "size_bytes": 10, "width": 100, "height": 50,
            "captured_at": captured, "first_seen_at": captured, "status": status, "attempts": 1,
            "processed_at": NOW - dt.timedelta(hours=i % 3) if status != "pending" else None,
            "error": {6: f"{uri}: image file is truncated", 7: "gave up after 3 attempts"}.get(i),
            "model_version_id": 1 if status == "ok" else None,
            "region": {"boxes": [[10, 5, 50, 40]], "source": "sidecar"} if i == 1 else None})
        if camera is not None:
            rows[ImageTag] += [{"image_id": i, "key": "camera", "value": camera},
                               {"image_id": i, "key": "site", "value": "s1"}]
        if status == "ok":
            rows[Prediction].append({"image_id": i, "model_version_id": 1, "class_index": cls,
                                     "confidence": confidence, "topk_indices": [cls], "topk_probs": [confidence],
                                     "topk_logits": [1.0], "correct": {1: True, 2: False, 3: True}.get(i)})
            rows[Heatmap].append({"image_id": i, "model_version_id": 1, "method": "gradcam", "target_class": cls, "target_layer": "l",
                                  "is_primary": True, "state": "ok", "grid_h": 2, "grid_w": 2,
                                  "extent": [0, 0, 1, 1], "data": encode_heatmap(MAPS[i]), "border_energy": border,
                                  "cam_box_x0": 0.1, "cam_box_y0": 0.2, "cam_box_x1": 0.5, "cam_box_y1": 1.0})
    with engine.begin() as conn:
        conn.execute(insert(ModelVersion).values(
            id=1, fingerprint="f" * 64, spec="tiny", num_classes=3, class_names=["cat", "dog", "fox"],
            input_size=[32, 32], preprocessing={}, target_layer="l", method="gradcam", created_at=DAY1))
        for table, values in rows.items():
            conn.execute(insert(table), values)
        conn.execute(insert(Flag), [{"image_id": i, "model_version_id": 1, "rule": r, "value": v, "threshold": t, "created_at": NOW}
                                    for i, r, v, t in FLAGS])
        conn.execute(insert(Review), [
            {"id": 1, "image_id": 3, "verdict": "false_alarm", "created_at": NOW},
            {"id": 2, "image_id": 3, "verdict": "wrong_attention_confirmed", "created_at": NOW},
            {"id": 3, "image_id": 5, "verdict": "false_alarm", "created_at": NOW}])
        conn.execute(insert(Reference).values(id=1, name="ref", kind="first_n", params={}, model_version_id=1,
                                              method="gradcam", created_at=DAY1, built_at=DAY1, n_images=2))
        conn.execute(insert(ReferenceMember), [{"reference_id": 1, "image_id": 1}, {"reference_id": 1, "image_id": 2}])
        conn.execute(insert(ReferenceStat).values(reference_id=1, class_index=-1, statistic="border_energy", n=2,
                                                  mean=0.3, std=0.1, values=[0.2, 0.4]))
        conn.execute(insert(ReferenceHeatmap).values(reference_id=1, class_index=-1, n=2, grid_h=2, grid_w=2,
                                                     data=encode_heatmap(np.full((2, 2), 0.25))))
        conn.execute(insert(DriftResult), [
            {"reference_id": 1, "window_kind": "day", "window_start": DAY1 + dt.timedelta(days=d),
             "window_end": DAY1 + dt.timedelta(days=d + 1), "statistic": "border_energy", "class_index": -1,
             "test": "ks", "score": None if d == 2 else 0.5 - 0.49 * d, "threshold": 0.05, "drifted": d == 1,
             "n_reference": 2, "n_current": (4, 1, 0)[d], "computed_at": NOW} for d in (0, 1, 2)])
        conn.execute(insert(DriftResult).values(
            reference_id=1, window_kind="day", window_start=DAY1 + dt.timedelta(days=2), window_end=DAY1,
            statistic="border_energy", class_index=-1, test="ks", score=0.001, threshold=0.05, drifted=True,
            n_reference=2, n_current=2, computed_at=NOW, slice="camera=B"))
        conn.execute(insert(WorkerHeartbeat).values(worker_id="w1", hostname="h", pid=1, state="running",
                                                    started_at=NOW, last_seen_at=NOW, model_version_id=1))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path_factory.mktemp(request.param)) as eng:
        _fill(eng)
        yield eng


def _day(n: int) -> ImageFilter:
    return ImageFilter(start=DAY1 + dt.timedelta(days=n), end=DAY1 + dt.timedelta(days=n + 1))


def test_time_series_buckets_by_hour_and_day_with_filters(engine: Engine) -> None:
    hourly = stat_time_series(engine, ["border_energy", "confidence"], "hour", ImageFilter())
    assert list(hourly["bucket"]) == [DAY1, DAY1 + dt.timedelta(hours=1), DAY1 + dt.timedelta(days=1, hours=5)]
    assert list(hourly["images"]) == [2, 2, 1]
    assert np.allclose(hourly["border_energy"], [0.3, 0.85, 0.1])
    assert np.allclose(hourly["confidence"], [0.85, 0.575, 0.7])
    daily = stat_time_series(engine, ["border_energy"], "day", ImageFilter())
    assert list(daily["bucket"]) == [DAY1, DAY1 + dt.timedelta(days=1)]
    assert np.allclose(daily["border_energy"], [0.575, 0.1])
    by_class = stat_time_series(engine, ["border_energy"], "hour", ImageFilter(class_index=0))
    assert np.allclose(by_class["border_energy"], [0.2, 0.85])
    by_camera = stat_time_series(engine, ["border_energy"], "hour", ImageFilter(tag_key="camera", tag_value="B"))
    assert list(by_camera["images"]) == [2] and np.allclose(by_camera["border_energy"], [0.85])
    assert len(stat_time_series(engine, ["border_energy"], "hour", _day(5))) == 0


def test_sampled_time_series_keeps_the_hash_sample(engine: Engine) -> None:
    kept = [i for i in range(1, 6) if (i * 761) % 1000 < 500]
    sampled = stat_time_series(engine, ["border_energy"], "day", ImageFilter(), per_mille=500)
    assert sampled["images"].sum() == len(kept)
    assert sampled["border_energy"].iloc[0] == pytest.approx(np.mean([IMAGES[i][4] for i in kept if i <= 4]))
    assert class_mix(engine, "day", ImageFilter(), per_mille=500)["images"].sum() == len(kept)
    assert (sample_rate(100, 200), sample_rate(1000, 200), sample_rate(10**9, 1)) == (1000, 200, 1)


def test_bucket_start_parses_sqlite_text() -> None:
    assert bucket_start("2025-01-02 05") == DAY1 + dt.timedelta(days=1, hours=5)
    assert bucket_start("2025-01-02") == DAY1 + dt.timedelta(days=1)


def test_unknown_statistic_and_unit_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown statistic"):
        stat_time_series(engine, ["spread; DROP TABLE images"], "hour", ImageFilter())
    with pytest.raises(ValueError, match="unknown time unit"):
        stat_time_series(engine, ["spread"], "minute", ImageFilter())


def test_counts_class_mix_and_range(engine: Engine) -> None:
    assert status_counts(engine) == {"pending": 1, "processing": 0, "ok": 5, "error": 2}
    assert status_counts(engine, _day(0)) == {"pending": 0, "processing": 0, "ok": 4, "error": 0}
    assert flagged_count(engine) == 3
    assert flagged_count(engine, ImageFilter(class_index=0)) == 2
    assert flagged_count(engine, _day(1)) == 1
    assert capture_range(engine) == (IMAGES[1][0], IMAGES[8][0])
    mix = class_mix(engine, "day", ImageFilter())
    assert mix.to_dict("records") == [{"bucket": DAY1, "class_index": 0, "images": 3},
                                      {"bucket": DAY1, "class_index": 1, "images": 1},
                                      {"bucket": DAY1 + dt.timedelta(days=1), "class_index": 2, "images": 1}]
    assert class_names(engine) == ["cat", "dog", "fox"]
    assert list(workers(engine)["worker_id"]) == ["w1"]
    assert throughput(engine, NOW - dt.timedelta(days=1))["images"].sum() == 7


def test_gallery_sorts_by_severity_and_filters(engine: Engine) -> None:
    page = flagged_page(engine, GalleryFilter(), limit=10)
    assert list(page["image_id"]) == [5, 4, 3]
    assert np.allclose(page["severity"], [1.0, 0.6, 0.2 / 0.6])
    assert list(page["total"]) == [3, 3, 3]
    assert list(flagged_page(engine, GalleryFilter(), limit=2, offset=2)["image_id"]) == [3]
    assert list(flagged_page(engine, GalleryFilter(rule="border_energy"), limit=10)["image_id"]) == [4, 3]
    assert np.allclose(flagged_page(engine, GalleryFilter(rule="border_energy"), limit=10)["severity"], [0.5, 1 / 3])
    reviewed = {status: list(flagged_page(engine, GalleryFilter(review=status), limit=10)["image_id"])
                for status in ("unreviewed", "wrong_attention_confirmed", "false_alarm", "wrong_label")}
    assert reviewed == {"unreviewed": [4], "wrong_attention_confirmed": [3], "false_alarm": [5], "wrong_label": []}
    assert flagged_total(engine, GalleryFilter(images=ImageFilter(tag_key="camera", tag_value="B"))) == 2
    assert flagged_total(engine, GalleryFilter(images=_day(1))) == 1
    with pytest.raises(ValueError, match="review status"):
        flagged_page(engine, GalleryFilter(review="maybe"), limit=1)


@pytest.mark.parametrize("rule", sorted(set(FLAG_RULES) - {"atypical_attention"}))
def test_flag_direction_and_severity_match_worker_rules(rule: str) -> None:
    """FLAGGED_BELOW and the SQL severity agree with worker/flags.py's own outcomes."""
    outcomes = {x: evaluate_flags({"energy_outside": x, "pointing_hit": x, "border_energy": x}, confidence=x,
                                  class_index=0, native_heatmap=None, reference=None, rules=[rule])[0]
                for x in (0.01, 0.99)}
    assert outcomes[0.01].flagged == (rule in FLAGGED_BELOW)
    assert outcomes[0.99].flagged == (rule not in FLAGGED_BELOW)
    margin = {x: (o.threshold - o.value if rule in FLAGGED_BELOW else o.value - o.threshold) / abs(o.threshold)
              for x, o in outcomes.items()}
    assert margin == pytest.approx({x: o.severity for x, o in outcomes.items()})


def test_flags_of_reports_sql_severity(engine: Engine) -> None:
    flags = flags_of(engine, [4])
    assert list(flags["rule"]) == ["low_confidence", "border_energy"]
    assert np.allclose(flags["severity"], [0.6, 0.5])
    assert len(flags_of(engine, [])) == 0


def test_drift_reference_and_heatmaps(engine: Engine) -> None:
    reference = current_reference(engine)
    assert reference is not None and reference.name == "ref"
    latest = latest_drift(engine, reference.id, "day")  # the newest window has no score yet: skipped
    by_camera = latest_drift(engine, reference.id, "day", slice_="camera=B")  # slices are apart
    assert list(by_camera["window_start"]) == [DAY1 + dt.timedelta(days=2)] and list(by_camera["n_current"]) == [2]
    assert drift_slices(engine, reference.id, "day") == ["camera=B"] and drift_slices(engine, reference.id, "hour") == []
    assert drift_statistics(engine, reference.id, "day") == ["border_energy"]
    assert len(drift_history(engine, reference.id, "day", "border_energy", slice_="camera=B")) == 1
    assert list(latest["window_start"]) == [DAY1 + dt.timedelta(days=1)] and bool(latest["drifted"].iloc[0])
    history = drift_history(engine, reference.id, "day", "border_energy")
    assert list(history["drifted"]) == [False, True, False]
    assert len(drift_history(engine, reference.id, "day", "border_energy", since=DAY1 + dt.timedelta(days=1))) == 2
    bands = reference_bands(engine, reference.id)
    assert bands.to_dict("records") == [{"statistic": "border_energy", "mean": 0.3, "std": 0.1, "n": 2}]
    mean_map, n = reference_heatmaps(engine, reference.id)[-1]
    assert n == 2 and np.allclose(mean_map, 0.25)


def test_iter_heatmaps_decodes_every_map(engine: Engine) -> None:
    batches = list(iter_heatmaps(engine, _day(0), chunk_rows=3))
    maps = np.concatenate([b.maps for b in batches])
    classes = np.concatenate([b.class_index for b in batches])
    assert len(batches) == 2  # two chunks of 3 and 1 rows
    assert sorted(m.sum() for m in maps) == sorted(MAPS[i].sum() for i in (1, 2, 3, 4))
    assert sorted(classes.tolist()) == [0, 0, 0, 1]
    assert len(list(iter_heatmaps(engine, ImageFilter(), limit=2))) == 1


def test_image_detail_and_views(engine: Engine) -> None:
    detail = image_detail(engine, 3)
    assert detail is not None
    assert detail.prediction is not None and detail.prediction["class_index"] == 0
    assert detail.heatmap is not None and detail.heatmap["border_energy"] == 0.8
    assert list(detail.reviews["verdict"]) == ["wrong_attention_confirmed", "false_alarm"]
    assert detail.tags == {"camera": "B", "site": "s1"} and detail.class_names == ["cat", "dog", "fox"]
    assert image_detail(engine, 999) is None
    view = image_views(engine, [1])[1]
    assert view.cam_box == pytest.approx([10.0, 10.0, 50.0, 50.0])  # fractions x (100, 50)
    assert view.object_boxes == [[10.0, 5.0, 50.0, 40.0]]
    assert view.native is not None and np.array_equal(view.native, MAPS[1])
    assert image_views(engine, [8])[8].native is None


def test_reference_member_added_once(engine: Engine) -> None:
    assert add_reference_member(engine, 1, 4) is True
    assert add_reference_member(engine, 1, 4) is False
    with engine.connect() as conn:
        assert conn.execute(select(ReferenceMember.image_id).where(ReferenceMember.reference_id == 1)
                            .order_by(ReferenceMember.image_id)).scalars().all() == [1, 2, 4]
    with pytest.raises(ValueError, match="reference 99 does not exist"):
        add_reference_member(engine, 99, 4)


def test_tags_slices_and_hash_sample(engine: Engine) -> None:
    assert tag_keys(engine) == ["camera", "site"]
    assert tag_values(engine, "camera") == ["A", "B"] and tag_values(engine, "nope") == []
    summary = slice_summary(engine, "camera", ImageFilter())  # index-only counts
    assert summary.to_dict("records") == [{"value": "A", "images": 4, "flagged": 1},
                                          {"value": "B", "images": 2, "flagged": 2}]
    everything = ImageFilter(start=DAY1, end=DAY1 + dt.timedelta(days=3))
    assert slice_summary(engine, "camera", everything).equals(summary)
    assert slice_summary(engine, "camera", _day(1)).to_dict("records") == [{"value": "A", "images": 2, "flagged": 1}]
    assert slice_summary(engine, "camera", ImageFilter(class_index=0))["images"].tolist() == [1, 2]
    full = slice_sample(engine, "camera", "border_energy", ImageFilter(), 1000)
    assert sorted(full["x"]) == pytest.approx([0.1, 0.2, 0.4, 0.8, 0.9])
    half = slice_sample(engine, "camera", "border_energy", ImageFilter(), 500)
    expected = {i for i in range(1, 6) if (i * 761) % 1000 < 500}
    assert sorted(half["x"]) == pytest.approx(sorted(float(IMAGES[i][4] or 0) for i in expected))
    with engine.connect() as conn:
        kept = conn.execute(select(Image.id).where(hash_sample(500)).order_by(Image.id)).scalars().all()
    assert kept == [i for i in IMAGES if (i * 761) % 1000 < 500]


def test_last_processed_moves_when_the_worker_writes(engine: Engine) -> None:
    when, newest = last_processed(engine)
    assert newest == max(IMAGES)
    assert when == max(NOW - dt.timedelta(hours=i % 3) for i, row in IMAGES.items() if row[1] != "pending")


def test_label_accuracy_counts_only_labelled_images(engine: Engine) -> None:
    ok = {i for i, row in IMAGES.items() if row[1] == "ok"}
    expected = {1: True, 2: False, 3: True}
    labelled = [i for i in expected if i in ok]
    assert label_accuracy(engine) == (len(labelled), sum(expected[i] for i in labelled))
    assert label_accuracy(engine, ImageFilter(start=NOW + dt.timedelta(days=1))) == (0, 0)


def test_health_queries(engine: Engine) -> None:
    reasons = error_reasons(engine)
    assert sorted(zip(reasons["reason"], reasons["images"], strict=True)) == [
        ("gave up after 3 attempts", 1), ("image file is truncated", 1)]
    size = database_size(engine)
    assert size is not None and size > 10_000
