"""A small hand-made database for the review loop and retention tests: processed images with a prediction,
a primary heatmap, an object box, tags, optionally flags, sightings, thumbnails and a reference."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import Engine, insert

from camwatch.statistics.registry import HEATMAP_KEYS
from db.codec import encode_heatmap
from db.models import (
    Flag,
    Heatmap,
    Image,
    ImageTag,
    Prediction,
    Reference,
    ReferenceMember,
    Sighting,
)
from db.session import session_scope, write_transaction
from db.writes import get_or_create_model_version

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CLASSES = ("cat", "dog", "bird")


def _thumbnail() -> bytes:
    """A real JPEG of noise, 160 x 120 (about 15 KiB): drawable, and as bulky as a worker's thumbnail."""
    noise = np.random.default_rng(0).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(noise, "RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


THUMBNAIL = _thumbnail()


@dataclass(frozen=True)
class Seeded:
    model_version_id: int
    ids: list[int]


def seed_images(engine: Engine, n: int, *, start: dt.datetime = T0, step: dt.timedelta = dt.timedelta(minutes=10),
                flag_values: Sequence[float | None] | None = None, rule: str = "energy_outside",
                threshold: float = 0.5, cameras: Sequence[str] = ("cam-1", "cam-2"), labelled: bool = True,
                thumbnails: bool = True, first_id: int = 1) -> Seeded:
    """``n`` ok images captured every ``step`` from ``start``; image ``k`` (0-based) predicts class ``k % 3``,
    is labelled with that class when ``labelled`` (so its prediction is correct), has camera
    ``cameras[k % len(cameras)]``, and is flagged by ``rule`` with ``flag_values[k]`` unless that is None."""
    with session_scope(engine, write=True) as session:
        mv = get_or_create_model_version(session, spec="tiny", weights_sha256=None, num_classes=3,
                                         class_names=list(CLASSES), input_size=[8, 8], preprocessing={},
                                         target_layer="features", method="gradcam")
    rows: dict[type, list[dict[str, object]]] = {t: [] for t in (Image, Sighting, ImageTag, Prediction, Heatmap, Flag)}
    ids = []
    for k in range(n):
        image_id = first_id + k
        ids.append(image_id)
        captured = start + k * step
        uri = f"/data/{cameras[k % len(cameras)]}/img_{image_id:05d}.jpg"
        flagged = flag_values is not None and flag_values[k] is not None
        rows[Image].append({
            "id": image_id, "sha256": f"{image_id:064x}", "uri": uri, "source": "feed", "size_bytes": 1000,
            "width": 640, "height": 480, "format": "JPEG", "captured_at": captured, "first_seen_at": captured,
            "processed_at": captured + dt.timedelta(seconds=5), "status": "ok", "attempts": 1,
            "model_version_id": mv, "label": CLASSES[k % 3] if labelled else None,
            "label_index": k % 3 if labelled else None,
            "region": {"boxes": [[100.0, 50.0, 300.0, 250.0]], "source": "sidecar"},
            "tags": {"camera": cameras[k % len(cameras)]}, "thumbnail": THUMBNAIL if thumbnails and flagged else None,
            "brightness": 100.0 + k, "contrast": 40.0, "sharpness": 500.0, "colourfulness": 20.0,
            "camera_model": "Axis M3106",
        })
        rows[Sighting].append({"image_id": image_id, "uri": uri, "source": "feed", "size_bytes": 1000,
                               "mtime_ns": image_id, "seen_at": captured, "is_duplicate": False})
        rows[ImageTag].append({"image_id": image_id, "key": "camera", "value": cameras[k % len(cameras)]})
        rows[Prediction].append({"image_id": image_id, "model_version_id": mv, "class_index": k % 3,
                                 "confidence": 0.9, "topk_indices": [k % 3, (k + 1) % 3],
                                 "topk_probs": [0.9, 0.1], "topk_logits": [2.0, 0.0],
                                 "correct": True if labelled else None})
        heatmap: dict[str, object] = {
            "image_id": image_id, "model_version_id": mv, "method": "gradcam", "target_class": k % 3,
            "target_layer": "features",
            "is_primary": True, "state": "ok", "grid_h": 7, "grid_w": 7, "extent": [0.0, 0.0, 1.0, 1.0],
            "data": encode_heatmap(np.outer(np.arange(1, 8), np.arange(1, 8)).astype(np.float32)),
            "raw_max": 49.0, "raw_sum": 784.0, "target_logit": 2.0}
        heatmap.update(dict.fromkeys(HEATMAP_KEYS, 0.5))
        heatmap.update({"cam_box_x0": 0.5, "cam_box_y0": 0.0, "cam_box_x1": 1.0, "cam_box_y1": 0.5})
        rows[Heatmap].append(heatmap)
        if flagged:
            rows[Flag].append({"image_id": image_id, "model_version_id": mv, "rule": rule,
                               "value": flag_values[k],  # type: ignore[index]
                               "threshold": threshold, "created_at": captured})
    with write_transaction(engine) as conn:
        for table, values in rows.items():
            if values:
                conn.execute(insert(table), values)
    return Seeded(mv, ids)


def add_reference(engine: Engine, model_version_id: int, member_ids: Sequence[int]) -> int:
    with write_transaction(engine) as conn:
        ref = conn.execute(insert(Reference).values(
            name="ref", kind="manual", params={"categories": {}}, model_version_id=model_version_id,
            method="gradcam", created_at=T0, built_at=T0, n_images=len(member_ids)).returning(Reference.id)).scalar_one()
        conn.execute(insert(ReferenceMember), [{"reference_id": ref, "image_id": i} for i in member_ids])
    return int(ref)
