"""Writing a worker's results for a claimed batch, all in one transaction."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, insert, update
from sqlalchemy.engine import Connection

from db.codec import encode_heatmap
from db.models import HEATMAP_STATES, STAT_COLUMNS, Flag, Heatmap, Image, ImageTag, Prediction
from db.records import HeatmapRecord, ImageResult, PredictionRecord
from db.session import write_transaction
from db.types import utcnow

log = logging.getLogger(__name__)

_RESULT_STATUSES = ("ok", "error")
# Tables holding per-image results, replaced as a whole when an image is written.
_ChildTable = type[ImageTag] | type[Prediction] | type[Heatmap] | type[Flag]


def _finite_or_none(value: float | None) -> float | None:
    """Non-finite numbers are stored as NULL: SQLite turns NaN into NULL anyway, and JSON cannot hold them."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _validate(result: ImageResult) -> None:
    if result.status not in _RESULT_STATUSES:
        raise ValueError(f"image {result.image_id}: result status must be one of {_RESULT_STATUSES}, "
                         f"got {result.status!r}")
    if result.heatmap is not None:
        if result.heatmap.state not in HEATMAP_STATES:
            raise ValueError(f"image {result.image_id}: heatmap state must be one of {HEATMAP_STATES}, "
                             f"got {result.heatmap.state!r}")
        unknown = set(result.heatmap.stats) - set(STAT_COLUMNS)
        if unknown:
            raise ValueError(f"image {result.image_id}: unknown heatmap statistics {sorted(unknown)}; "
                             "expected names from db.models.STAT_COLUMNS")
    if (result.prediction is not None or result.heatmap is not None) and result.model_version_id is None:
        raise ValueError(f"image {result.image_id}: a prediction or heatmap needs model_version_id")


def _prediction_row(image_id: int, model_version_id: int, p: PredictionRecord) -> dict[str, Any]:
    """The predictions row; non-finite numbers become NULL / JSON null (PostgreSQL's JSON has no NaN)."""
    return {"image_id": image_id, "model_version_id": model_version_id, "class_index": int(p.class_index),
            "confidence": _finite_or_none(p.confidence), "topk_indices": [int(i) for i in p.topk_indices],
            "topk_probs": [_finite_or_none(v) for v in p.topk_probs],
            "topk_logits": [_finite_or_none(v) for v in p.topk_logits], "correct": p.correct}


def _heatmap_row(image_id: int, h: HeatmapRecord) -> dict[str, Any]:
    native = h.native
    if native.ndim != 2:
        raise ValueError(f"image {image_id}: heatmap must be 2-D (rows, cols), got shape {native.shape}")
    row: dict[str, Any] = {
        "image_id": image_id, "method": h.method, "target_class": int(h.target_class),
        "target_layer": h.target_layer, "is_primary": True, "state": h.state,
        "grid_h": int(native.shape[0]), "grid_w": int(native.shape[1]),
        "extent": [_finite_or_none(v) for v in h.extent], "data": encode_heatmap(native),
        "raw_max": _finite_or_none(h.raw_max), "raw_sum": _finite_or_none(h.raw_sum),
        "target_logit": _finite_or_none(h.target_logit),
    }
    row.update({name: _finite_or_none(h.stats.get(name)) for name in STAT_COLUMNS})
    return row


def _claimed_update(conn: Connection, worker_id: str, result: ImageResult) -> bool:
    """Update the image row if ``worker_id`` still holds its claim; False when another worker took it over."""
    values: dict[str, Any] = {
        "status": result.status, "error": result.error, "width": result.width, "height": result.height,
        "format": result.format, "processed_at": utcnow(), "lease_until": None, "label": result.label,
        "label_index": result.label_index, "region": result.region, "tags": dict(result.tags) or None,
        "thumbnail": result.thumbnail, "model_version_id": result.model_version_id,
    }
    if result.captured_at is not None:
        values["captured_at"] = result.captured_at
    written = conn.execute(
        update(Image)
        .where(Image.id == result.image_id, Image.claimed_by == worker_id, Image.status == "processing")
        .values(**values)
        .returning(Image.id)
    ).scalar_one_or_none()
    return written is not None


def complete_batch(engine: Engine, worker_id: str, results: Sequence[ImageResult]) -> int:
    """Write the results of a claimed batch in ONE transaction; returns the number of images written.

    Only images still 'processing' and claimed by ``worker_id`` are written; an image whose lease was
    taken over by another worker is skipped (and logged), so nothing is written twice. Any earlier
    tags, prediction, heatmaps and flags of a written image are replaced (a re-processed image keeps
    only its newest results; heatmaps computed on demand for the old state are dropped with them).
    """
    for result in results:
        _validate(result)
    if len({r.image_id for r in results}) != len(results):
        raise ValueError(f"worker {worker_id}: the batch lists an image more than once")
    ordered = sorted(results, key=lambda r: r.image_id)  # a fixed lock order across workers
    # Child rows are built (and heatmaps encoded, which may refuse a map) before the transaction starts.
    now = utcnow()
    children: dict[_ChildTable, list[dict[str, Any]]] = {ImageTag: [], Prediction: [], Heatmap: [], Flag: []}
    for r in ordered:
        children[ImageTag] += [{"image_id": r.image_id, "key": k, "value": v} for k, v in r.tags.items()]
        if r.prediction is not None and r.model_version_id is not None:
            children[Prediction].append(_prediction_row(r.image_id, r.model_version_id, r.prediction))
        if r.heatmap is not None:
            children[Heatmap].append(_heatmap_row(r.image_id, r.heatmap))
        children[Flag] += [{"image_id": r.image_id, "rule": f.rule, "value": _finite_or_none(f.value),
                            "threshold": _finite_or_none(f.threshold), "created_at": now} for f in r.flags]

    with write_transaction(engine) as conn:
        written = {r.image_id for r in ordered if _claimed_update(conn, worker_id, r)}
        skipped = [r.image_id for r in ordered if r.image_id not in written]
        if skipped:
            log.warning("worker %s: skipped %d results whose claim another worker holds now (ids %s)",
                        worker_id, len(skipped), skipped)
        if not written:
            return 0
        for table, rows in children.items():
            conn.execute(delete(table).where(table.image_id.in_(sorted(written))))
            mine = [row for row in rows if row["image_id"] in written]
            if mine:
                conn.execute(insert(table), mine)
    return len(written)
