"""The curated set: images a reviewer confirmed as "the model looked at the wrong region", with everything
a team retraining the model needs (the object boxes, the CAM box, the label, the flags that fired).

An image is in the set when its latest review is :data:`camwatch.conventions.CONFIRMED`. Its label is the
reviewer's correction when one exists (:mod:`db.labels`), else the stored one. Boxes are
``[x0, y0, x1, y1]`` in original pixels (half-open); the CAM box is the primary heatmap's normalised box
times the image size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

from sqlalchemy import Engine, and_, func, select

from camwatch.conventions import CONFIRMED
from camwatch.exports import Column
from camwatch.statistics.registry import CAM_BOX_KEYS
from db.labels import corrected_labels
from db.models import Flag, Heatmap, Image, ModelVersion, Prediction, Review
from db.queries import ImageFilter, apply_filter
from db.versions import flag_of, heatmap_join, prediction_join

CURATED_COLUMNS: tuple[Column, ...] = (
    Column("image_id", "int"), Column("uri", "str"), Column("file_name", "str"), Column("sha256", "str"),
    Column("captured_at", "datetime"), Column("width", "int"), Column("height", "int"),
    Column("label", "str"), Column("label_index", "int"), Column("label_source", "str"),
    Column("predicted_index", "int"), Column("predicted_class", "str"), Column("confidence", "float"),
    Column("flags", "str"), Column("object_boxes", "json"), Column("cam_box", "json"),
    Column("reviewer", "str"), Column("note", "str"), Column("reviewed_at", "datetime"), Column("tags", "json"),
)


def curated_images(engine: Engine, f: ImageFilter | None = None) -> Iterator[dict[str, Any]]:
    """Rows of :data:`CURATED_COLUMNS`, oldest capture first."""
    latest = (select(Review.image_id, func.max(Review.id).label("review_id")).group_by(Review.image_id)
              .subquery("latest_review"))
    corrected = corrected_labels()
    f = f or ImageFilter()
    version = f.model_version_id
    stmt = (select(Image.id, Image.uri, Image.sha256, Image.captured_at, Image.width, Image.height, Image.label,
                   Image.label_index, Image.region, Image.tags, Review.reviewer, Review.note,
                   Review.created_at.label("reviewed_at"), Prediction.class_index, Prediction.confidence,
                   ModelVersion.class_names, corrected.c.label.label("corrected_label"),
                   corrected.c.label_index.label("corrected_index"),
                   *(getattr(Heatmap, name) for name in CAM_BOX_KEYS))
            .select_from(latest)
            .join(Review, and_(Review.id == latest.c.review_id, Review.verdict == CONFIRMED))
            .join(Image, Image.id == latest.c.image_id)
            .outerjoin(Prediction, prediction_join(version))
            .outerjoin(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .outerjoin(corrected, corrected.c.image_id == Image.id)
            .outerjoin(Heatmap, heatmap_join(version)))
    stmt = apply_filter(stmt, f, predictions_joined=True).order_by(Image.captured_at, Image.id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        flags: dict[int, list[str]] = {}
        ids = [r.id for r in rows]
        for start in range(0, len(ids), 900):
            for image_id, rule, value, threshold in conn.execute(
                    select(Flag.image_id, Flag.rule, Flag.value, Flag.threshold).join(Image, flag_of(version))
                    .where(Flag.image_id.in_(ids[start:start + 900])).order_by(Flag.image_id, Flag.rule)):
                flags.setdefault(image_id, []).append(f"{rule}={value:.4g} (threshold {threshold:.4g})"
                                                      if value is not None and threshold is not None else rule)
    for r in rows:
        names = r.class_names or []
        cam = [r.cam_box_x0, r.cam_box_y0, r.cam_box_x1, r.cam_box_y1]
        cam_box = ([cam[0] * r.width, cam[1] * r.height, cam[2] * r.width, cam[3] * r.height]
                   if r.width and r.height and all(v is not None for v in cam) else None)
        reviewed = r.corrected_label is not None
        yield {
            "image_id": r.id, "uri": r.uri, "file_name": PurePath(r.uri).name, "sha256": r.sha256,
            "captured_at": r.captured_at, "width": r.width, "height": r.height,
            "label": r.corrected_label if reviewed else r.label,
            "label_index": r.corrected_index if reviewed else r.label_index,
            "label_source": "review" if reviewed else ("annotation" if r.label is not None else None),
            "predicted_index": r.class_index,
            "predicted_class": names[r.class_index] if r.class_index is not None and r.class_index < len(names)
            else None,
            "confidence": r.confidence, "flags": "; ".join(flags.get(r.id, [])),
            "object_boxes": [list(map(float, b)) for b in (r.region or {}).get("boxes", [])],
            "cam_box": cam_box, "reviewer": r.reviewer, "note": r.note, "reviewed_at": r.reviewed_at,
            "tags": r.tags or {},
        }

