"""Storage cost per image in SQLite, through the real write path (register, claim, complete): without
thumbnails, with a thumbnail for every image (``thumbnails = "all"``; the default stores them for flagged
images only), and what a pruned image leaves behind."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from camwatch.imaging.decode import make_thumbnail
from camwatch.statistics.registry import HEATMAP_KEYS
from db.claims import claim_batch
from db.prune import PruneOptions, prune
from db.records import FlagRecord, HeatmapRecord, ImageResult, PredictionRecord
from db.registry import register_file
from db.results import complete_batch
from db.session import session_scope
from db.writes import get_or_create_model_version
from tests.support.databases import migrated_engine

log = logging.getLogger(__name__)

N_IMAGES = 1000
MAX_BYTES_PER_IMAGE = 2048
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def _database_bytes(engine: Engine) -> int:
    """Bytes of the compacted database file (WAL checkpointed, free pages dropped)."""
    engine.dispose()
    path = engine.url.database
    assert path is not None
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return int(page_count * page_size)


def _fill(engine: Engine, rng: np.random.Generator, thumbnail: bytes | None = None) -> None:
    with session_scope(engine, write=True) as s:
        mv = get_or_create_model_version(
            s, spec="efficientnet-lite0", weights_sha256="e" * 64, num_classes=1000,
            class_names=[f"class-{i}" for i in range(1000)], input_size=[224, 224],
            preprocessing={"resize": 256, "crop": 224}, target_layer="features", method="gradcam")
    with session_scope(engine, write=True) as s:
        for i in range(N_IMAGES):  # uris of ~60 characters
            register_file(s, uri=f"/srv/cameras/site-north/cam-03/2025-03-01/IMG_{i:06d}_00123.jpg",
                          sha256=f"{rng.integers(2**63):064x}", size_bytes=int(rng.integers(50_000, 900_000)),
                          mtime_ns=1_740_830_400_000_000_000 + i, source="site-north",
                          captured_at=T0 + dt.timedelta(seconds=7 * i))
    while claimed := claim_batch(engine, "worker-1", limit=64, lease_seconds=300):
        results = []
        for c in claimed:
            logits = rng.normal(0.0, 3.0, 1000).astype(np.float32)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            top = np.argsort(-probs)[:5]
            native = rng.random((7, 7)).astype(np.float32) * 20.0
            stats: dict[str, float | None] = {name: float(rng.random()) for name in HEATMAP_KEYS}
            properties = {"brightness": float(rng.uniform(40, 200)), "contrast": float(rng.uniform(20, 70)),
                          "sharpness": float(rng.uniform(100, 3000)), "colourfulness": float(rng.uniform(5, 60))}
            flags = [FlagRecord("energy_outside", stats["energy_outside"], 0.7)] if c.id % 10 == 0 else []
            results.append(ImageResult(
                image_id=c.id, status="ok", width=1920, height=1080, format="JPEG",
                tags={"site": "north", "camera": "cam-03"}, model_version_id=mv, thumbnail=thumbnail,
                properties=properties, camera_model="AXIS M3106-L Mk II",
                prediction=PredictionRecord(
                    class_index=int(top[0]), confidence=float(probs[top[0]]),
                    topk_indices=[int(k) for k in top], topk_probs=[float(probs[k]) for k in top],
                    topk_logits=[float(logits[k]) for k in top]),
                heatmap=HeatmapRecord(
                    method="gradcam", target_class=int(top[0]), target_layer="features", state="ok",
                    native=native, extent=(0.0, 0.0, 1920.0, 1080.0), raw_max=float(native.max()),
                    raw_sum=float(native.sum()), target_logit=float(logits[top[0]]), stats=stats),
                flags=flags))
        assert complete_batch(engine, "worker-1", results) == len(results)


def test_sqlite_bytes_per_image_without_thumbnails(tmp_path: Path) -> None:
    with migrated_engine("sqlite", tmp_path) as engine:
        empty = _database_bytes(engine)
        _fill(engine, np.random.default_rng(0))
        full = _database_bytes(engine)
    per_image = (full - empty) / N_IMAGES
    log.info("SQLite storage: %.0f bytes per image (%d images, %d bytes over the empty schema)",
             per_image, N_IMAGES, full - empty)
    assert per_image <= MAX_BYTES_PER_IMAGE


def test_sqlite_bytes_per_image_with_thumbnails_and_after_pruning(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    """A real photo's thumbnail (JPEG, 256 px, quality 80) on every image; then every image pruned."""
    thumbnail = make_thumbnail(photos["chelsea"])
    with migrated_engine("sqlite", tmp_path) as engine:
        empty = _database_bytes(engine)
        _fill(engine, np.random.default_rng(0), thumbnail)
        full = _database_bytes(engine)
        report = prune(engine, PruneOptions(older_than=dt.timedelta(days=1), pause_seconds=0, full_vacuum=True),
                       now=T0 + dt.timedelta(days=30))
        pruned = _database_bytes(engine)
    with_thumbnails, left = (full - empty) / N_IMAGES, (pruned - empty) / N_IMAGES
    log.info("SQLite storage: %.0f bytes per image with a %d-byte thumbnail each; %.0f bytes per pruned image",
             with_thumbnails, len(thumbnail), left)
    size = len(thumbnail)
    assert report.images == N_IMAGES
    # the blob's overflow pages round it up to 4 KiB pages: at most one page more than the blob itself
    assert size < with_thumbnails <= size + MAX_BYTES_PER_IMAGE + 4096, (with_thumbnails, size)
    assert left <= 700, left  # the tombstone: sha256, uri, times, status, image properties
