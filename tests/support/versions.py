"""Two model versions on the same images: a shadow-mode worker run of the tiny model (primary) and its
second version (:data:`tests.support.models.TINY_V2_SPEC`) over ``n`` random images in four camera folders.
Importing this module loads no torch (the dashboard's tests use it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from camwatch.settings import load_settings
from db.codec import decode_heatmap
from db.models import Heatmap, Prediction
from db.session import make_engine

CAMERAS = 4


def make_images(folder: Path, n: int, seed: int = 0, start: int = 0) -> list[Path]:
    """``n`` random 48x40 PNGs in ``folder/cam<k>/`` (k = index mod 4)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(start, start + n):
        sub = folder / f"cam{i % CAMERAS}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def worker_settings(url: str, folder: Path, *specs: str, **extra: Any) -> Any:
    """Settings of a burst worker over ``folder`` with ``specs`` (two or more: shadow mode, first primary)."""
    models = {"models": [{"model": specs[0], "primary": True}, *({"model": s} for s in specs[1:])]} \
        if len(specs) > 1 else {}
    return load_settings(None, db=url, source=[str(folder)], model=specs[0], path_tags=["camera"],
                         stable_seconds=0.0, poll_seconds=0.05, batch_size=16, thumbnails="all", **models, **extra)


def run_worker(settings: Any) -> None:
    from worker.service.worker import Worker

    Worker(settings).work(burst=True)


def two_versions(folder: Path, url: str, n: int = 200) -> None:
    """``n`` images processed by a shadow-mode worker: version 1 (primary) and version 2 (shadow), each with
    a reference of 50 images (so both get drift)."""
    from tests.support.models import TINY_SPEC, TINY_V2_SPEC  # torch: only where a worker runs

    make_images(folder / "images", n)
    run_worker(worker_settings(url, folder / "images", TINY_SPEC, TINY_V2_SPEC, reference={"first_n": 50}))


def counts_per_version(url: str, table: Any = Prediction) -> dict[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {int(v): int(c) for v, c in conn.execute(
                select(table.model_version_id, func.count()).group_by(table.model_version_id))}
    finally:
        engine.dispose()


def primary_maps(url: str, version: int) -> dict[int, np.ndarray]:
    """Image id → the version's primary heatmap, decoded."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {int(r.image_id): decode_heatmap(r.data, r.grid_h, r.grid_w) for r in conn.execute(
                select(Heatmap.image_id, Heatmap.grid_h, Heatmap.grid_w, Heatmap.data)
                .where(Heatmap.model_version_id == version, Heatmap.is_primary, Heatmap.state == "ok"))}
    finally:
        engine.dispose()


def expected_moved_order(url: str, a: int = 1, b: int = 2) -> list[int]:
    """Image ids by decreasing 1 - Pearson r of the two versions' maps, computed here with numpy alone
    (same grid for both tiny models), ties by id, maps without a distribution last."""
    maps_a, maps_b = primary_maps(url, a), primary_maps(url, b)
    shifts = {}
    for image_id in sorted(set(maps_a) & set(maps_b)):
        x, y = maps_a[image_id].astype(float).ravel(), maps_b[image_id].astype(float).ravel()
        shifts[image_id] = 1.0 - float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")
    defined = sorted((i for i in shifts if shifts[i] == shifts[i]), key=lambda i: (-shifts[i], i))
    return defined + sorted(i for i in shifts if shifts[i] != shifts[i])
