"""Realistic synthetic camwatch databases, for dashboard tests and latency benchmarks.

``python -m demo.synthetic.fill --db URL --images N [--seed S] [--days D] [--cameras C] ...``

:func:`fill_database` writes what a worker fleet would have written after ``days`` of watching
``cameras`` cameras on ``sites`` sites: images (a few pending, some errors), tags ``site``/``camera``,
predictions, primary heatmaps with their statistics, flags, thumbnails of flagged images, reviews of some
flagged images, a ``first_n`` reference (members, statistics, mean heatmaps), drift results per day
(class -1 and per class), and two worker heartbeats (one running, one stale). The scene model and its
shortcut camera are described in :mod:`demo.synthetic.model`.

Speed: rows are generated with numpy in chunks and written with Core ``insert()`` executemany, one
transaction per chunk (about 1 minute per million images on SQLite on a 2-core machine; see the report
printed by the CLI). The database must hold no images yet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select

from camwatch.statistics.registry import HEATMAP_KEYS, IMAGE_PROPERTY_COLUMNS
from db.codec import encode_heatmap
from db.migrate import upgrade
from db.models import Flag, Heatmap, Image, ImageTag, Prediction, Sighting
from db.session import make_engine, session_scope, write_transaction
from db.writes import get_or_create_model_version
from demo.synthetic import model as sm
from demo.synthetic.extras import Accumulator, write_extras

log = logging.getLogger(__name__)

RESOLUTIONS = ((1280, 720), (1920, 1080))
#: Bumped whenever the generated rows change, so that cached databases (benchmarks) are rebuilt.
GENERATOR_VERSION = 4  # 4: image properties and camera models; 3: flag thresholds read from FlagConfig


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`fill_database` wrote."""

    n_images: int
    n_ok: int
    n_error: int
    n_pending: int
    n_flagged: int
    n_reviews: int
    model_version_id: int
    reference_id: int
    start: dt.datetime
    end: dt.datetime
    shortcut_camera: str | None
    seconds: float


@dataclass(frozen=True)
class _Plan:
    """Per-image arrays decided up front (length n)."""

    captured: np.ndarray  # datetime64[us], sorted
    status: np.ndarray  # 'ok' | 'error' | 'pending' | 'processing'
    camera: np.ndarray
    shortcut: np.ndarray


def fill_database(url: str, n_images: int, *, seed: int = 0, start: dt.datetime | None = None, days: float = 30.0,
                  cameras: int = 8, sites: int = 2, flagged_share: float = 0.04, error_share: float = 0.005,
                  pending: int | None = None, reference_size: int = 2000, review_share: float = 0.2,
                  shortcut: bool = True, sightings: bool = False, chunk_size: int = 20_000) -> SyntheticSummary:
    """Fill the (empty) database at ``url`` with ``n_images`` realistic images; see the module docstring.

    ``start`` defaults to ``now - days`` so that the data ends now. ``flagged_share`` is the share of images
    whose attention is deliberately off the object (the share actually flagged is a little higher: rules
    also fire on normal images near a threshold and on the shortcut camera). With ``shortcut``, camera
    ``cam-03`` (or the last camera when fewer) attends a watermark from 60% of the period on. ``pending``
    images (default n/1000, at most 200) are the newest ones, not yet processed. ``sightings`` (one per
    uri) are written only on request: the dashboard never reads them and they cost a fifth of the time.
    """
    if n_images < 1 or cameras < 1 or sites < 1 or days <= 0:
        raise ValueError(f"fill_database({url!r}): need n_images, cameras, sites >= 1 and days > 0")
    began = time.perf_counter()
    start = start or dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(Image)).scalar_one():
                raise ValueError(f"{engine.url.render_as_string(hide_password=True)}: the database already "
                                 "holds images; fill_database needs an empty one")
        with session_scope(engine, write=True) as session:
            model_version_id = get_or_create_model_version(
                session, spec="efficientnet_lite0", weights_sha256="0" * 64, num_classes=len(sm.CLASS_NAMES),
                class_names=sm.CLASS_NAMES, input_size=[224, 224], preprocessing={"mode": "resize"},
                target_layer="features.head", method="gradcam")
        rng = np.random.default_rng(seed)
        plan = _plan(rng, n_images, start, days, cameras, error_share, pending, shortcut)
        shortcut_camera = sm.camera_name(min(3, cameras - 1)) if shortcut else None
        acc = Accumulator(n_images, start, days, len(sm.CLASS_NAMES), cameras, reference_size)
        thumbs = [t for scene in sm.thumbnails(cameras, seed) for t in (scene, sm.watermarked(scene))]
        n_flagged = 0
        for lo, chunk in _chunks(plan, seed, chunk_size, acc, flagged_share):
            rows = _rows(lo, chunk, plan, acc, thumbs, model_version_id, sites, sightings)
            n_flagged += len({r["image_id"] for r in rows[Flag]})
            with write_transaction(engine) as conn:
                for table in (Image, Sighting, ImageTag, Prediction, Heatmap, Flag):
                    if rows[table]:
                        conn.execute(insert(table), rows[table])
            log.info("synthetic: %d / %d images written", min(lo + chunk_size, n_images), n_images)
        reference_id, n_reviews = write_extras(engine, acc, model_version_id, rng, review_share=review_share,
                                               end=start + dt.timedelta(days=days))
        counts = {s: int((plan.status == s).sum()) for s in ("ok", "error")}
        return SyntheticSummary(
            n_images=n_images, n_ok=counts["ok"], n_error=counts["error"],
            n_pending=n_images - counts["ok"] - counts["error"], n_flagged=n_flagged, n_reviews=n_reviews,
            model_version_id=model_version_id, reference_id=reference_id, start=start,
            end=start + dt.timedelta(days=days), shortcut_camera=shortcut_camera,
            seconds=time.perf_counter() - began)
    finally:
        engine.dispose()


def _plan(rng: np.random.Generator, n: int, start: dt.datetime, days: float, cameras: int, error_share: float,
          pending: int | None, shortcut: bool) -> _Plan:
    span_us = int(days * 86_400e6)
    offsets = np.sort(rng.integers(0, span_us, n))
    captured = np.datetime64(start.astimezone(dt.UTC).replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    status = np.where(rng.random(n) < error_share, "error", "ok").astype(object)
    n_pending = min(200, n // 1000) if pending is None else min(pending, n)
    if n_pending:
        status[n - n_pending:] = "pending"
        status[n - n_pending: n - n_pending + max(1, n_pending // 10)] = "processing"
    camera = rng.integers(0, cameras, n)
    watermark = np.zeros(n, dtype=bool)
    if shortcut:
        watermark = (camera == min(3, cameras - 1)) & (offsets >= 0.6 * span_us)
    return _Plan(captured=captured, status=status, camera=camera, shortcut=watermark)


@dataclass(frozen=True)
class _Chunk:
    params: sm.SceneParams
    maps: np.ndarray
    stats: dict[str, np.ndarray]  # heatmap statistics and image properties (width and height included)
    width: np.ndarray
    height: np.ndarray


def _chunks(plan: _Plan, seed: int, size: int, acc: Accumulator, bad_share: float) -> Iterator[tuple[int, _Chunk]]:
    """Chunks in capture order; the first ones are held back until the reference can be computed (flags
    of every chunk need it)."""
    held: list[tuple[int, _Chunk]] = []
    n = plan.captured.size
    for lo in range(0, n, size):
        hi = min(lo + size, n)
        rng = np.random.default_rng([seed, lo])
        params = sm.draw_scenes(rng, len(sm.CLASS_NAMES), bad_share, plan.shortcut[lo:hi])
        resolution = np.asarray(RESOLUTIONS)[plan.camera[lo:hi] % len(RESOLUTIONS)]
        maps = sm.heatmaps(rng, params)
        stats = {**sm.statistics(maps, params, resolution[:, 0], resolution[:, 1]),
                 **sm.image_properties(rng, plan.camera[lo:hi], plan.shortcut[lo:hi]),
                 "width": resolution[:, 0].astype(np.float64), "height": resolution[:, 1].astype(np.float64)}
        chunk = _Chunk(params, maps, stats, resolution[:, 0], resolution[:, 1])
        acc.add_chunk(lo, plan.status[lo:hi] == "ok", plan.captured[lo:hi], plan.camera[lo:hi], params, maps,
                      chunk.stats)
        held.append((lo, chunk))
        if acc.reference_ready or hi == n:
            acc.finish_reference()
            for start, done in held:
                acc.add_attention(start, plan.status[start:start + done.maps.shape[0]] == "ok", done.params.cls,
                                  done.maps)
            yield from held
            held = []


def _rows(lo: int, chunk: _Chunk, plan: _Plan, acc: Accumulator, thumbs: list[bytes], model_version_id: int,
          sites: int, sightings: bool) -> dict[type, list[dict[str, Any]]]:
    p, k = chunk.params, chunk.maps.shape[0]
    status = plan.status[lo:lo + k]
    ok = status == "ok"
    flag_rows = [f for f in sm.flags(chunk.stats, p.confidence, p.cls, acc.class_reference) if ok[f[0]]]
    flagged = {f[0] for f in flag_rows}
    captured: list[dt.datetime] = [t.replace(tzinfo=dt.UTC) for t in plan.captured[lo:lo + k].tolist()]
    delay = np.random.default_rng(lo).uniform(1.0, 40.0, size=(k,))
    rows: dict[type, list[dict[str, Any]]] = {t: [] for t in (Image, Sighting, ImageTag, Prediction, Heatmap, Flag)}
    topk = _topk(p, np.random.default_rng([lo, 1]))
    stat_columns = {name: chunk.stats[name].tolist() for name in HEATMAP_KEYS}
    properties = {name: chunk.stats[name].tolist() for name in IMAGE_PROPERTY_COLUMNS}
    # One codec call per chunk: maps stacked row-major are the concatenation of each map's encoding.
    blobs, map_bytes = encode_heatmap(chunk.maps.reshape(-1, sm.GRID)), 2 * sm.GRID * sm.GRID
    raw_max, raw_sum = chunk.maps.max(axis=(1, 2)).tolist(), chunk.maps.sum(axis=(1, 2)).tolist()
    for i in range(k):
        image_id = lo + i + 1
        cam = int(plan.camera[lo + i])
        site, camera = sm.site_name(cam % sites), sm.camera_name(cam)
        uri = f"/data/{site}/{camera}/{captured[i]:%Y-%m-%d}/img_{image_id:08d}.jpg"
        state = str(status[i])
        done = state in ("ok", "error")
        width, height = int(chunk.width[i]), int(chunk.height[i])
        box = [float(p.ox[i] - p.bw[i] / 2) * width, float(p.oy[i] - p.bh[i] / 2) * height,
               float(p.ox[i] + p.bw[i] / 2) * width, float(p.oy[i] + p.bh[i] / 2) * height]
        thumb = None
        if i in flagged:
            thumb = thumbs[2 * cam + int(p.shortcut[i])]
        label = int(p.cls[i]) if p.has_region[i] and ok[i] else None
        rows[Image].append({
            "id": image_id, "sha256": hashlib.sha256(f"{image_id}:{uri}".encode()).hexdigest(), "uri": uri,
            "source": "cameras", "size_bytes": 150_000 + (image_id * 7919) % 200_000,
            "width": width if done else None, "height": height if done else None,
            "format": "JPEG" if done else None, "captured_at": captured[i],
            "first_seen_at": captured[i] + dt.timedelta(seconds=1),
            "processed_at": captured[i] + dt.timedelta(seconds=float(delay[i])) if done else None,
            "status": state, "error": f"{uri}: {sm.ERROR_REASONS[image_id % len(sm.ERROR_REASONS)]}"
            if state == "error" else None,
            "attempts": 1 if state != "pending" else 0,
            "claimed_by": "worker-a" if state == "processing" else None,
            "lease_until": captured[i] + dt.timedelta(minutes=5) if state == "processing" else None,
            "model_version_id": model_version_id if ok[i] else None,
            "label": sm.CLASS_NAMES[label] if label is not None else None, "label_index": label,
            "region": {"boxes": [box], "source": "sidecar"} if p.has_region[i] and ok[i] else None,
            "tags": {"site": site, "camera": camera} if done else None, "thumbnail": thumb,
            "camera_model": sm.camera_model(cam) if done else None,
            **{name: values[i] if done else None for name, values in properties.items()},
        })
        if sightings:
            rows[Sighting].append({"image_id": image_id, "uri": uri, "source": "cameras",
                                   "size_bytes": 150_000 + (image_id * 7919) % 200_000, "mtime_ns": image_id,
                                   "seen_at": captured[i] + dt.timedelta(seconds=1), "is_duplicate": False})
        if not done:
            continue
        rows[ImageTag] += [{"image_id": image_id, "key": "site", "value": site},
                           {"image_id": image_id, "key": "camera", "value": camera}]
        if not ok[i]:
            continue
        indices, probs, logits = topk[0][i], topk[1][i], topk[2][i]
        rows[Prediction].append({
            "image_id": image_id, "model_version_id": model_version_id, "class_index": int(p.cls[i]),
            "confidence": float(p.confidence[i]), "topk_indices": indices, "topk_probs": probs,
            "topk_logits": logits, "correct": None if label is None else label == int(p.cls[i])})
        heatmap: dict[str, Any] = {
            "image_id": image_id, "model_version_id": model_version_id, "method": "gradcam",
            "target_class": int(p.cls[i]),
            "target_layer": "features.head", "is_primary": True, "state": "ok", "grid_h": sm.GRID,
            "grid_w": sm.GRID, "extent": [0.0, 0.0, 1.0, 1.0],
            "data": blobs[i * map_bytes:(i + 1) * map_bytes], "raw_max": raw_max[i], "raw_sum": raw_sum[i],
            "target_logit": logits[0]}
        heatmap.update({name: _finite(values[i]) for name, values in stat_columns.items()})
        rows[Heatmap].append(heatmap)
    processed_at = {r["id"]: r["processed_at"] for r in rows[Image]}
    rows[Flag] = [{"image_id": lo + i + 1, "model_version_id": model_version_id, "rule": rule, "value": value, "threshold": threshold,
                   "created_at": processed_at[lo + i + 1]} for i, rule, value, threshold in flag_rows]
    acc.add_flagged(lo, sorted(flagged))
    return rows


def _topk(p: sm.SceneParams, rng: np.random.Generator) -> tuple[list[list[int]], list[list[float]], list[list[float]]]:
    """Top-5 indices, probabilities (decreasing, the first = confidence) and logits per image."""
    k, n_classes = p.cls.size, len(sm.CLASS_NAMES)
    others = np.argsort(rng.random((k, n_classes)) + (np.arange(n_classes) == p.cls[:, None]) * 2, axis=1)[:, :4]
    rest = rng.dirichlet(np.ones(n_classes - 1), k)[:, :4]
    rest = -np.sort(-rest, axis=1) * (1 - p.confidence)[:, None]
    probs = np.concatenate([p.confidence[:, None], np.minimum(rest, p.confidence[:, None])], axis=1)
    logits = np.log(probs) + 3.0
    indices = np.concatenate([p.cls[:, None], others], axis=1)
    return indices.tolist(), probs.round(6).tolist(), logits.round(4).tolist()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill an empty camwatch database with realistic synthetic rows.")
    parser.add_argument("--db", required=True, help="database URL, e.g. sqlite:////tmp/camwatch-1m.db")
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--flagged-share", type=float, default=0.04)
    parser.add_argument("--no-shortcut", action="store_true", help="no camera attends a watermark")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = fill_database(args.db, args.images, seed=args.seed, days=args.days, cameras=args.cameras,
                            sites=args.sites, flagged_share=args.flagged_share, shortcut=not args.no_shortcut)
    print(f"{summary.n_images} images ({summary.n_ok} ok, {summary.n_error} errors, {summary.n_pending} "  # noqa: T201
          f"pending), {summary.n_flagged} flagged, {summary.n_reviews} reviews, shortcut camera "
          f"{summary.shortcut_camera}, {summary.start:%Y-%m-%d} .. {summary.end:%Y-%m-%d}, "
          f"written in {summary.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
