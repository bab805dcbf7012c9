"""The images export: every processed image with its prediction, primary heatmap, statistics, image
properties and flags, streamed in chunks of :data:`CHUNK` rows (keyset pagination on the image id).

Columns (:func:`image_columns`, types declared for the writers of :mod:`camwatch.exports`): image_id, uri,
sha256, status, error, warnings (JSON list), source, captured_at, processed_at, width, height, label,
reviewed_label (a reviewer's 'wrong label' correction), tags (JSON text), object_boxes (JSON text),
model_version_id, model_spec, class_index, class_name, confidence, correct (by the reviewed label when there is
one, see :mod:`db.labels`), deployed_class_index and deployed_score (the deployed model's prediction, when a
queue event carried it), method, target_class, heatmap_state, raw_max, raw_sum, target_logit, every statistic
of :data:`camwatch.statistics.registry.HEATMAP_KEYS`, every image property of
:data:`~camwatch.statistics.registry.IMAGE_PROPERTY_COLUMNS`, camera_model, flags (comma-separated rule
keys), pruned_at. With ``with_heatmap`` rows also carry ``heatmap`` (the native map, nested row-major lists)
and ``heatmap_extent``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Engine

from camwatch.exports import Column
from camwatch.statistics.registry import HEATMAP_KEYS, IMAGE_PROPERTY_COLUMNS
from db.codec import decode_heatmap
from db.labels import corrected_labels, effective_correct
from db.models import Flag, Heatmap, Image, ModelVersion, Prediction
from db.versions import flag_of, heatmap_join, prediction_join

CHUNK = 2000

_BASE_COLUMNS: tuple[Column, ...] = (
    Column("image_id", "int"), Column("uri", "str"), Column("sha256", "str"), Column("status", "str"),
    Column("error", "str"), Column("warnings", "str"), Column("source", "str"), Column("captured_at", "datetime"),
    Column("processed_at", "datetime"), Column("width", "int"), Column("height", "int"), Column("label", "str"),
    Column("reviewed_label", "str"), Column("tags", "str"), Column("object_boxes", "str"),
    Column("model_version_id", "int"), Column("model_spec", "str"), Column("class_index", "int"),
    Column("class_name", "str"), Column("confidence", "float"), Column("correct", "bool"),
    Column("deployed_class_index", "int"), Column("deployed_score", "float"), Column("method", "str"),
    Column("target_class", "int"), Column("heatmap_state", "str"), Column("raw_max", "float"),
    Column("raw_sum", "float"), Column("target_logit", "float"),
    *(Column(name, "float") for name in (*HEATMAP_KEYS, *IMAGE_PROPERTY_COLUMNS)),
    Column("camera_model", "str"), Column("flags", "str"), Column("pruned_at", "datetime"),
)


def image_columns(with_heatmap: bool) -> tuple[Column, ...]:
    """The declared columns of the images export."""
    return _BASE_COLUMNS + ((Column("heatmap", "json"), Column("heatmap_extent", "json")) if with_heatmap else ())


def _query(after_id: int) -> Select:
    corrected = corrected_labels()
    return (select(Image.id.label("image_id"), Image.uri, Image.sha256, Image.status, Image.error, Image.warnings,
                   Image.source, Image.captured_at, Image.processed_at, Image.width, Image.height, Image.label,
                   Image.tags, Image.region, Image.model_version_id, ModelVersion.spec.label("model_spec"),
                   ModelVersion.class_names, Prediction.class_index, Prediction.confidence,
                   effective_correct(corrected).label("correct"), corrected.c.label.label("reviewed_label"),
                   Image.deployed_class_index, Image.deployed_score,
                   Heatmap.method, Heatmap.target_class, Heatmap.state.label("heatmap_state"), Heatmap.raw_max,
                   Heatmap.raw_sum, Heatmap.target_logit, Heatmap.grid_h, Heatmap.grid_w, Heatmap.data,
                   Heatmap.extent, *[getattr(Heatmap, c) for c in HEATMAP_KEYS],
                   *[getattr(Image, c) for c in IMAGE_PROPERTY_COLUMNS], Image.camera_model, Image.pruned_at)
            .outerjoin(ModelVersion, ModelVersion.id == Image.model_version_id)
            .outerjoin(Prediction, prediction_join(None))
            .outerjoin(Heatmap, heatmap_join(None))
            .outerjoin(corrected, corrected.c.image_id == Image.id)
            .where(Image.id > after_id, Image.status.in_(("ok", "error")))
            .order_by(Image.id).limit(CHUNK))


def iter_rows(engine: Engine, *, with_heatmap: bool) -> Iterator[dict[str, Any]]:
    """Every processed (ok or error) image as one export row, in id order."""
    after = 0
    while True:
        with engine.connect() as conn:
            batch = conn.execute(_query(after)).mappings().all()
            if not batch:
                return
            flags: dict[int, list[str]] = {}
            ids = [m["image_id"] for m in batch]
            for image_id, rule in conn.execute(select(Flag.image_id, Flag.rule).join(Image, flag_of(None)).where(
                    Flag.image_id >= ids[0], Flag.image_id <= ids[-1])):
                flags.setdefault(image_id, []).append(rule)
        for m in batch:
            row = {k: m[k] for k in m if k not in ("class_names", "data", "grid_h", "grid_w", "extent", "region")}
            names = m["class_names"] or []
            idx = m["class_index"]
            row["class_name"] = names[idx] if idx is not None and idx < len(names) else None
            row["object_boxes"] = json.dumps((m["region"] or {}).get("boxes")) if m["region"] else None
            row["tags"] = json.dumps(m["tags"] or {})
            row["warnings"] = json.dumps(m["warnings"]) if m["warnings"] else None
            row["flags"] = ",".join(sorted(flags.get(m["image_id"], [])))
            row["correct"] = None if m["correct"] is None else bool(m["correct"])
            if with_heatmap:
                row["heatmap"] = (decode_heatmap(m["data"], m["grid_h"], m["grid_w"]).round(5).tolist()
                                  if m["data"] is not None else None)
                row["heatmap_extent"] = m["extent"]
            yield row
        after = batch[-1]["image_id"]
