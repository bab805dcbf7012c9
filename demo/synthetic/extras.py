"""Everything :mod:`demo.synthetic.fill` writes besides the per-image rows: the reference, drift results per day,
reviews and worker heartbeats, from what an :class:`Accumulator` gathered while the chunks were generated.

``attention_correlation`` (:data:`camwatch.monitoring.reference.ATTENTION_CORRELATION`) is the Pearson r of an image's
normalised map with the reference mean map: of its predicted class for the per-class tests, of all classes
for class ``-1``; reference members use the leave-one-out mean (:func:`camwatch.monitoring.reference.loo_correlations`).

The reference is the first ``reference_size`` images processed without error (kind ``first_n``); its
statistics follow the conventions of :mod:`camwatch.monitoring.reference` (population std, class ``-1`` = all, mean
heatmap = mean of the maps normalised to sum 1). Drift results use the registered tests of
:mod:`camwatch.monitoring.drift` with their defaults (:func:`camwatch.monitoring.drift.default_test_for`), per calendar day (UTC),
for class ``-1`` and for every class with at least 30 images in the day and in the reference, and for
class ``-1`` of every camera (``slice = 'camera=cam-NN'``; statistics only). They are decided by each test's
own threshold (rule ``threshold``), not calibrated per window as the worker's (``camwatch drift`` recomputes
them calibrated).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

import numpy as np
from sqlalchemy import Engine, insert

from camwatch.conventions import ALL_CLASSES, REVIEW_VERDICTS, WRONG_LABEL
from camwatch.monitoring.drift import DEFAULT_MIN_SAMPLES, default_test_for, get_test
from camwatch.monitoring.flags import ATYPICAL_STATISTICS
from camwatch.monitoring.heatmaps import MeanHeatmap, loo_correlations, row_correlations
from camwatch.monitoring.reference import ATTENTION_CORRELATION
from camwatch.settings import DriftSettings
from camwatch.statistics.registry import CATEGORIES, ENGINE_KEYS, HEATMAP_KEYS, IMAGE_KEYS
from db.codec import encode_heatmap
from db.models import (
    Reference,
    ReferenceHeatmap,
    ReferenceMember,
    ReferenceStat,
    Review,
)
from db.models_ops import WorkerHeartbeat
from db.records import DriftResultRecord
from db.session import session_scope, write_transaction
from db.writes import upsert_drift_results
from demo.synthetic import model as sm

log = logging.getLogger(__name__)

KNOWN_STATISTICS = (*HEATMAP_KEYS, *ENGINE_KEYS, *IMAGE_KEYS, ATTENTION_CORRELATION)
#: Share of each review verdict among the synthetic reviews, in the order of REVIEW_VERDICTS.
VERDICT_SHARES = dict(zip(REVIEW_VERDICTS, (0.5, 0.3, 0.1, 0.1), strict=True))
REVIEWERS = ("ana", "ben", "chloe")


class Accumulator:
    """Per-image values kept for drift (float32), reference members and per-day mean-map sums."""

    def __init__(self, n: int, start: dt.datetime, days: float, n_classes: int, n_cameras: int,
                 reference_size: int) -> None:
        wanted = DriftSettings().statistics
        self.statistics = [name for name in wanted if name in KNOWN_STATISTICS]
        if len(self.statistics) < len(wanted):
            log.warning("synthetic: no values for drift statistics %s", sorted(set(wanted) - set(self.statistics)))
        self.values = {name: np.full(n, np.nan, dtype=np.float32) for name in self.statistics}
        self.attention_class = np.full(n, np.nan, dtype=np.float32)  # r with the own class's reference map
        self.cls = np.full(n, -1, dtype=np.int16)  # -1: not processed successfully
        self.camera = np.zeros(n, dtype=np.int16)
        self.n_cameras = n_cameras
        self.captured = np.zeros(n, dtype="datetime64[us]")
        self.day0 = np.datetime64(start.astimezone(dt.UTC).replace(tzinfo=None), "D")
        self.n_days = int(np.ceil(days)) + 1
        self.n_classes = n_classes
        self.map_sums = np.zeros((self.n_days, n_classes + 1, sm.GRID, sm.GRID))  # last class slot: all
        self.map_counts = np.zeros((self.n_days, n_classes + 1), dtype=np.int64)
        self.reference_size = reference_size
        self.member_ids: list[int] = []
        self.member_cls: list[np.ndarray] = []
        self.member_values: dict[str, list[np.ndarray]] = {s: [] for s in (*HEATMAP_KEYS, *ENGINE_KEYS, *IMAGE_KEYS)}
        self.member_maps: list[np.ndarray] = []
        self.class_reference: dict[int, sm.ClassReference] = {}
        self.reference_maps: dict[int, np.ndarray] = {}  # class (-1: all) -> mean normalised member map
        self.flagged_ids: list[int] = []

    @property
    def reference_ready(self) -> bool:
        return len(self.member_ids) >= self.reference_size

    def add_chunk(self, lo: int, ok: np.ndarray, captured: np.ndarray, camera: np.ndarray, params: sm.SceneParams,
                  maps: np.ndarray, stats: dict[str, np.ndarray]) -> None:
        hi = lo + ok.size
        engine = {"confidence": params.confidence, "raw_max": maps.max(axis=(1, 2)),
                  "raw_sum": maps.sum(axis=(1, 2)), "target_logit": np.log(params.confidence) + 3.0}
        merged = {**stats, **engine}
        for name in self.statistics:
            if name != ATTENTION_CORRELATION:
                self.values[name][lo:hi] = np.where(ok, merged[name], np.nan)
        self.cls[lo:hi] = np.where(ok, params.cls, -1)
        self.captured[lo:hi] = captured
        self.camera[lo:hi] = camera
        normalised = maps / maps.sum(axis=(1, 2), keepdims=True)
        day = (captured.astype("datetime64[D]") - self.day0).astype(np.int64)
        rows = np.flatnonzero(ok)
        np.add.at(self.map_sums, (day[rows], params.cls[rows]), normalised[rows])
        everything = np.full(rows.size, self.n_classes)
        np.add.at(self.map_sums, (day[rows], everything), normalised[rows])
        np.add.at(self.map_counts, (day[rows], params.cls[rows]), 1)
        np.add.at(self.map_counts, (day[rows], everything), 1)
        take = rows[: max(0, self.reference_size - len(self.member_ids))]
        if take.size:
            self.member_ids += (take + lo + 1).tolist()
            self.member_cls.append(params.cls[take])
            for name, store in self.member_values.items():
                store.append(np.asarray(merged[name], dtype=np.float64)[take])
            self.member_maps.append(normalised[take])

    def finish_reference(self) -> None:
        """Reference mean maps, and per-class mean/std of the ``atypical_attention`` statistics (classes with
        >= 30 members)."""
        if self.reference_maps or not self.member_ids:
            return
        cls = np.concatenate(self.member_cls)
        maps = np.concatenate(self.member_maps)
        self.reference_maps = {c: maps[idx].mean(axis=0) for c, idx in self.reference_groups().items()}
        values = np.stack([np.concatenate(self.member_values[name]) for name in ATYPICAL_STATISTICS], axis=1)
        for c in np.unique(cls).tolist():
            rows = values[cls == c]
            if rows.shape[0] >= 30:
                self.class_reference[int(c)] = sm.ClassReference(rows.mean(axis=0), rows.std(axis=0))

    def reference_groups(self) -> dict[int, np.ndarray]:
        """Member positions per class, and all of them under -1."""
        cls = np.concatenate(self.member_cls) if self.member_cls else np.zeros(0, dtype=np.int64)
        groups = {ALL_CLASSES: np.arange(cls.size)}
        groups.update({int(c): np.flatnonzero(cls == c) for c in np.unique(cls).tolist()})
        return groups

    def add_attention(self, lo: int, ok: np.ndarray, cls: np.ndarray, maps: np.ndarray) -> None:
        """``attention_correlation`` of a chunk, once the reference maps exist."""
        if ATTENTION_CORRELATION not in self.values or ALL_CLASSES not in self.reference_maps:
            return
        p = maps / maps.sum(axis=(1, 2), keepdims=True)
        hi = lo + ok.size
        overall = row_correlations(p, self.reference_maps[ALL_CLASSES][None])
        own = np.stack([self.reference_maps.get(int(c), np.full((sm.GRID, sm.GRID), np.nan)) for c in cls])
        self.values[ATTENTION_CORRELATION][lo:hi] = np.where(ok, overall, np.nan)
        self.attention_class[lo:hi] = np.where(ok, row_correlations(p, own), np.nan)

    def reference_values(self) -> dict[tuple[str, int], np.ndarray]:
        """Finite member values per (statistic, class), including ``attention_correlation`` (leave-one-out)."""
        groups = self.reference_groups()
        columns = {name: np.concatenate(store) if store else np.zeros(0)
                   for name, store in self.member_values.items()}
        maps = np.concatenate(self.member_maps) if self.member_maps else np.zeros((0, sm.GRID, sm.GRID))
        out: dict[tuple[str, int], np.ndarray] = {}
        for c, idx in groups.items():
            for name, column in (*columns.items(), (ATTENTION_CORRELATION, loo_correlations(maps[idx]))):
                values = column if name == ATTENTION_CORRELATION else column[idx]
                out[(name, c)] = values[np.isfinite(values)]
        return out

    def add_flagged(self, lo: int, rows: list[int]) -> None:
        self.flagged_ids += [lo + r + 1 for r in rows]


def write_extras(engine: Engine, acc: Accumulator, model_version_id: int, rng: np.random.Generator, *,
                 review_share: float, end: dt.datetime) -> tuple[int, int]:
    """Write reference, drift results, reviews and heartbeats; returns ``(reference_id, n_reviews)``."""
    reference_id = _write_reference(engine, acc, model_version_id)
    records = _drift_records(acc, reference_id)
    with session_scope(engine, write=True) as session:
        upsert_drift_results(session, records)
    n_reviews = _write_reviews(engine, acc, rng, review_share, end)
    with write_transaction(engine) as conn:
        conn.execute(insert(WorkerHeartbeat), [
            {"worker_id": "worker-a", "hostname": "edge-1", "pid": 4242, "source": "cameras",
             "model_version_id": model_version_id, "started_at": end - dt.timedelta(days=2),
             "last_seen_at": end - dt.timedelta(seconds=20), "state": "running",
             "processed": int((acc.cls >= 0).sum()), "errors": 12, "images_per_s": 11.5},
            {"worker_id": "worker-b", "hostname": "edge-2", "pid": 977, "source": "cameras",
             "model_version_id": model_version_id, "started_at": end - dt.timedelta(days=9),
             "last_seen_at": end - dt.timedelta(days=2, hours=3), "state": "running",
             "processed": 52_000, "errors": 3, "images_per_s": 9.8},
        ])
    log.info("synthetic: reference %d, %d drift results, %d reviews", reference_id, len(records), n_reviews)
    return reference_id, n_reviews


def _write_reference(engine: Engine, acc: Accumulator, model_version_id: int) -> int:
    members = acc.member_ids
    built_at = (acc.captured[members[-1] - 1].astype(dt.datetime).replace(tzinfo=dt.UTC)
                + dt.timedelta(hours=1)) if members else None
    with write_transaction(engine) as conn:
        reference_id = conn.execute(insert(Reference).values(
            name=f"first {acc.reference_size} images", kind="first_n",
            params={"first_n": acc.reference_size, "categories": {"camera_model": dict(Counter(
                sm.camera_model(int(acc.camera[i - 1])) for i in members))}},
            model_version_id=model_version_id, method="gradcam", created_at=built_at or dt.datetime.now(dt.UTC),
            built_at=built_at, n_images=len(members)).returning(Reference.id)).scalar_one()
        if not members:
            return int(reference_id)
        conn.execute(insert(ReferenceMember), [{"reference_id": reference_id, "image_id": i} for i in members])
        conn.execute(insert(ReferenceStat), [
            {"reference_id": reference_id, "class_index": c, "statistic": name, "n": int(values.size),
             "mean": float(values.mean()) if values.size else None,
             "std": float(values.std()) if values.size else None, "values": values[:5000].tolist()}
            for (name, c), values in acc.reference_values().items()])
        groups = acc.reference_groups()
        conn.execute(insert(ReferenceHeatmap), [
            {"reference_id": reference_id, "class_index": c, "n": int(groups[c].size), "grid_h": sm.GRID,
             "grid_w": sm.GRID, "data": encode_heatmap(mean)} for c, mean in acc.reference_maps.items()])
    return int(reference_id)


def _drift_records(acc: Accumulator, reference_id: int) -> list[DriftResultRecord]:
    groups = acc.reference_groups()
    ref_cls = np.concatenate(acc.member_cls) if acc.member_cls else np.zeros(0, dtype=np.int64)
    ref_values = acc.reference_values()
    ref_models = np.asarray([sm.camera_model(int(acc.camera[i - 1])) for i in acc.member_ids], dtype=object)
    day = (acc.captured.astype("datetime64[D]") - acc.day0).astype(np.int64)
    bounds = np.searchsorted(day, np.arange(acc.n_days + 1))  # captures are sorted
    records: list[DriftResultRecord] = []
    for d in range(acc.n_days):
        lo, hi = int(bounds[d]), int(bounds[d + 1])
        cls = acc.cls[lo:hi].astype(np.int64)
        if not (cls >= 0).any() or not acc.reference_maps:
            continue
        start = (acc.day0 + np.timedelta64(d, "D")).astype(dt.datetime)
        window = (dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC),
                  dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC) + dt.timedelta(days=1))

        def record(statistic: str, c: int, test: str, outcome_args: tuple, slice_: str = "",
                   window: tuple[dt.datetime, dt.datetime] = window) -> None:
            outcome = get_test(test).run(*outcome_args)
            records.append(DriftResultRecord(
                reference_id=reference_id, window_kind="day", window_start=window[0], window_end=window[1],
                statistic=statistic, class_index=c, test=test, score=outcome.score, threshold=outcome.threshold,
                drifted=outcome.drifted, n_reference=outcome.n_reference, n_current=outcome.n_current,
                slice=slice_, p_value=outcome.p_value, effect_size=outcome.effect_size))

        for c, ref_idx in groups.items():
            rows = np.flatnonzero(cls >= 0) if c == ALL_CLASSES else np.flatnonzero(cls == c)
            if c != ALL_CLASSES and (rows.size < DEFAULT_MIN_SAMPLES or ref_idx.size < DEFAULT_MIN_SAMPLES):
                continue
            for name in acc.statistics:
                reference = ref_values[(name, c)]
                current = acc.attention_class if name == ATTENTION_CORRELATION and c != ALL_CLASSES else \
                    acc.values[name]
                record(name, c, default_test_for("numeric", reference.size),
                       (reference, current[lo:hi][rows].astype(np.float64)))
            slot = acc.n_classes if c == ALL_CLASSES else c
            if acc.map_counts[d, slot]:
                window_map = MeanHeatmap(int(acc.map_counts[d, slot]), 0,
                                         acc.map_sums[d, slot] / acc.map_counts[d, slot])
                record("heatmap_correlation", c, "heatmap_correlation",
                       (MeanHeatmap(int(ref_idx.size), 0, acc.reference_maps[c]), window_map))
        record("predicted_class", ALL_CLASSES, default_test_for("categorical", ref_cls.size),
               (ref_cls, cls[cls >= 0]))
        cameras = acc.camera[lo:hi]
        models = np.asarray([sm.camera_model(c) for c in range(acc.n_cameras)], dtype=object)
        camera = CATEGORIES["camera_model"]
        record("camera_model", ALL_CLASSES, camera.test, (ref_models, models[cameras[cls >= 0]], camera.threshold))
        for cam in range(acc.n_cameras):
            rows = np.flatnonzero((cls >= 0) & (cameras == cam))
            for name in acc.statistics:
                reference = ref_values[(name, ALL_CLASSES)]
                record(name, ALL_CLASSES, default_test_for("numeric", reference.size),
                       (reference, acc.values[name][lo:hi][rows].astype(np.float64)), f"camera={sm.camera_name(cam)}")
    return records


def _write_reviews(engine: Engine, acc: Accumulator, rng: np.random.Generator, share: float,
                   end: dt.datetime) -> int:
    flagged = np.asarray(acc.flagged_ids, dtype=np.int64)
    chosen = flagged[rng.random(flagged.size) < share]
    if not chosen.size:
        return 0
    verdicts = rng.choice(len(VERDICT_SHARES), size=chosen.size, p=list(VERDICT_SHARES.values()))
    delays = rng.uniform(1.0, 48.0, chosen.size)
    rows = []
    for image_id, verdict, hours in zip(chosen.tolist(), verdicts.tolist(), delays.tolist(), strict=True):
        captured = acc.captured[image_id - 1].astype(dt.datetime).replace(tzinfo=dt.UTC)
        key = REVIEW_VERDICTS[verdict]
        right = (int(acc.cls[image_id - 1]) + 1 + image_id % 3) % acc.n_classes  # another class than predicted
        rows.append({"image_id": image_id, "verdict": key, "reviewer": REVIEWERS[image_id % 3],
                     "label": sm.CLASS_NAMES[right] if key == WRONG_LABEL else None,
                     "label_index": right if key == WRONG_LABEL else None,
                     "note": "synthetic review", "created_at": min(end, captured + dt.timedelta(hours=hours))})
    with write_transaction(engine) as conn:
        conn.execute(insert(Review), rows)
    return len(rows)
