"""Writing a worker's results for a claimed batch, all in one transaction."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update

from camwatch.statistics.heatmap import HEATMAP_STATES
from camwatch.statistics.registry import HEATMAP_KEYS, IMAGE_PROPERTY_COLUMNS
from db.codec import encode_heatmap
from db.limits import bounded
from db.models import Flag, Heatmap, Image, ImageTag, Prediction
from db.records import FlagRecord, HeatmapRecord, ImageResult, PredictionRecord, VersionResult
from db.session import write_transaction
from db.types import utcnow

log = logging.getLogger(__name__)

_RESULT_STATUSES = ("ok", "error")
_IN_CHUNK = 900  # ids per IN (...) list: under SQLite's bound-parameter limit
# Tables holding per-(image, model version) results, replaced per pair when an image is written.
_ChildTable = type[Prediction] | type[Heatmap] | type[Flag]


def _finite_or_none(value: float | None) -> float | None:
    """Non-finite numbers are stored as NULL: SQLite turns NaN into NULL anyway, and JSON cannot hold them."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _validate_maps(image_id: int, heatmap: HeatmapRecord | None, extra: Sequence[HeatmapRecord]) -> None:
    maps = ([] if heatmap is None else [heatmap]) + list(extra)
    for h in maps:
        if h.state not in HEATMAP_STATES:
            raise ValueError(f"image {image_id}: heatmap state must be one of {HEATMAP_STATES}, got {h.state!r}")
        unknown = set(h.stats) - set(HEATMAP_KEYS)
        if unknown:
            raise ValueError(f"image {image_id}: unknown heatmap statistics {sorted(unknown)}; "
                             "expected names from camwatch.statistics.registry.HEATMAP_KEYS")
    if heatmap is not None and not heatmap.is_primary:
        raise ValueError(f"image {image_id}: the heatmap of a result must be the primary heatmap")
    if any(h.is_primary for h in extra):
        raise ValueError(f"image {image_id}: extra heatmaps cannot be primary")
    keys = [(h.method, int(h.target_class)) for h in maps]
    if len(set(keys)) != len(keys):
        raise ValueError(f"image {image_id}: two heatmaps with the same method and target class "
                         f"{sorted(keys)} (the table is unique on image, model version, method and target class)")


def _validate(result: ImageResult) -> None:
    if result.status not in _RESULT_STATUSES:
        raise ValueError(f"image {result.image_id}: result status must be one of {_RESULT_STATUSES}, "
                         f"got {result.status!r}")
    versions = [result.model_version_id, *(v.model_version_id for v in result.shadows)]
    if len(set(versions)) != len(versions):
        raise ValueError(f"image {result.image_id}: a model version appears twice among its results {versions}")
    for shadow in result.shadows:
        _validate_maps(result.image_id, shadow.heatmap, shadow.extra_heatmaps)
    _validate_maps(result.image_id, result.heatmap, result.extra_heatmaps)
    maps = ([] if result.heatmap is None else [result.heatmap]) + list(result.extra_heatmaps)
    unknown = set(result.properties) - set(IMAGE_PROPERTY_COLUMNS)
    if unknown:
        raise ValueError(f"image {result.image_id}: unknown image properties {sorted(unknown)}; expected names "
                         "from camwatch.statistics.registry.IMAGE_PROPERTY_COLUMNS")
    if (result.prediction is not None or maps or result.flags) and result.model_version_id is None:
        raise ValueError(f"image {result.image_id}: a prediction, heatmap or flag needs model_version_id")


def _prediction_row(image_id: int, model_version_id: int, p: PredictionRecord) -> dict[str, Any]:
    """The predictions row; non-finite numbers become NULL / JSON null (PostgreSQL's JSON has no NaN)."""
    return {"image_id": image_id, "model_version_id": model_version_id, "class_index": int(p.class_index),
            "confidence": _finite_or_none(p.confidence), "topk_indices": [int(i) for i in p.topk_indices],
            "topk_probs": [_finite_or_none(v) for v in p.topk_probs],
            "topk_logits": [_finite_or_none(v) for v in p.topk_logits], "correct": p.correct,
            "labels": None if p.labels is None else [int(c) for c in p.labels]}


def _heatmap_row(image_id: int, model_version_id: int, h: HeatmapRecord) -> dict[str, Any]:
    native = h.native
    if native.ndim != 2:
        raise ValueError(f"image {image_id}: heatmap must be 2-D (rows, cols), got shape {native.shape}")
    row: dict[str, Any] = {
        "image_id": image_id, "model_version_id": model_version_id, "method": h.method, "target_class": int(h.target_class),
        "target_layer": h.target_layer, "is_primary": h.is_primary, "state": h.state,
        "grid_h": int(native.shape[0]), "grid_w": int(native.shape[1]),
        "extent": [_finite_or_none(v) for v in h.extent], "data": encode_heatmap(native),
        "raw_max": _finite_or_none(h.raw_max), "raw_sum": _finite_or_none(h.raw_sum),
        "target_logit": _finite_or_none(h.target_logit),
    }
    row.update({name: _finite_or_none(h.stats.get(name)) for name in HEATMAP_KEYS})
    return row


# Image columns copied from the result as they are; processed_at, tags and captured_at are set apart.
_COPIED_FIELDS = ("status", "error", "width", "height", "format", "label", "label_index", "region", "thumbnail",
                  "model_version_id", "camera_model")
_IMAGE_FIELDS = (*_COPIED_FIELDS, "processed_at", "tags", "warnings", *IMAGE_PROPERTY_COLUMNS)


def _image_params(result: ImageResult, now: dt.datetime) -> dict[str, Any]:
    """Bound values of the image row's UPDATE (see :func:`_image_update`)."""
    values = {key: getattr(result, key) for key in _COPIED_FIELDS}
    values.update(processed_at=now, tags=dict(result.tags) or None, captured_at=result.captured_at,
                  warnings=list(result.warnings) or None)
    values.update({name: _finite_or_none(result.properties.get(name)) for name in IMAGE_PROPERTY_COLUMNS})
    return {f"b_{key}": value for key, value in values.items()} | {"b_id": result.image_id}


@lru_cache(maxsize=16)
def _image_update(worker_id: str) -> Update:
    """One UPDATE of an image row by id, run once per row of a batch (executemany); the claim is re-checked."""
    columns = Image.__table__.c
    values: dict[str, Any] = {key: bindparam(f"b_{key}", type_=columns[key].type) for key in _IMAGE_FIELDS}
    values["lease_until"] = None
    # A capture time read while decoding (EXIF) overrides the scanner's; None keeps it.
    values["captured_at"] = func.coalesce(bindparam("b_captured_at", type_=columns["captured_at"].type),
                                          Image.captured_at)
    return (update(Image)
            .where(Image.id == bindparam("b_id"), Image.claimed_by == worker_id, Image.status == "processing")
            .values(values))


def _still_claimed(conn: Connection, worker_id: str, ids: Sequence[int]) -> set[int]:
    """Ids among ``ids`` that ``worker_id`` still holds, locked until the commit (PostgreSQL ``FOR UPDATE``;
    on SQLite the write transaction already excludes every other writer)."""
    query = select(Image.id).where(Image.id.in_(ids), Image.claimed_by == worker_id,
                                   Image.status == "processing").order_by(Image.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return set(conn.execute(query).scalars())


def complete_batch(engine: Engine, worker_id: str, results: Sequence[ImageResult]) -> int:
    """Write the results of a claimed batch in ONE transaction; returns the number of images written.

    Only images still 'processing' and claimed by ``worker_id`` are written; an image whose lease was
    taken over by another worker is skipped (and logged), so nothing is written twice. A written image's
    tags are replaced, and so are its prediction, heatmaps and flags *of the model versions written*
    (the primary's and the shadows'; heatmaps computed on demand for the old state are dropped with them);
    the results of other model versions are kept.
    Texts are fitted to their columns first (:func:`db.limits.bounded`), on every database.
    """
    for result in results:
        _validate(result)
    results = [bounded(r) for r in results]
    if len({r.image_id for r in results}) != len(results):
        raise ValueError(f"worker {worker_id}: the batch lists an image more than once")
    ordered = sorted(results, key=lambda r: r.image_id)  # a fixed lock order across workers
    # Child rows are built (and heatmaps encoded, which may refuse a map) before the transaction starts.
    now = utcnow()
    tags = [{"image_id": r.image_id, "key": k, "value": v} for r in ordered for k, v in r.tags.items()]
    versioned = _VersionRows()
    for r in ordered:
        if r.model_version_id is not None:
            versioned.add(r.image_id, r.model_version_id, r.prediction, r.heatmap, r.extra_heatmaps, r.flags, now)
        for v in r.shadows:
            versioned.add(r.image_id, v.model_version_id, v.prediction, v.heatmap, v.extra_heatmaps, v.flags, now)

    with write_transaction(engine) as conn:
        written = _still_claimed(conn, worker_id, [r.image_id for r in ordered])
        if written:
            params = [_image_params(r, now) for r in ordered if r.image_id in written]
            updated = conn.execute(_image_update(worker_id), params).rowcount
            if updated != len(params):  # impossible while the rows are locked; never commit a partial batch
                raise RuntimeError(f"worker {worker_id}: {updated} of {len(params)} claimed images updated")
        skipped = [r.image_id for r in ordered if r.image_id not in written]
        if skipped:
            log.warning("worker %s: skipped %d results whose claim another worker holds now (ids %s)",
                        worker_id, len(skipped), skipped)
        if not written:
            return 0
        conn.execute(delete(ImageTag).where(ImageTag.image_id.in_(sorted(written))))
        mine = [row for row in tags if row["image_id"] in written]
        if mine:
            conn.execute(insert(ImageTag), mine)
        versioned.write(conn, written)
    return len(written)


class _VersionRows:
    """The prediction, heatmap and flag rows of (image, model version) pairs, written as a whole: the earlier
    rows of exactly those pairs are replaced, other versions' results of the same image are kept."""

    def __init__(self) -> None:
        self.pairs: list[tuple[int, int]] = []
        self.rows: dict[_ChildTable, list[dict[str, Any]]] = {Prediction: [], Heatmap: [], Flag: []}

    def add(self, image_id: int, version: int, prediction: PredictionRecord | None, heatmap: HeatmapRecord | None,
            extra: Sequence[HeatmapRecord], flags: Sequence[FlagRecord], now: dt.datetime) -> None:
        self.pairs.append((image_id, version))
        if prediction is not None:
            self.rows[Prediction].append(_prediction_row(image_id, version, prediction))
        maps = ([] if heatmap is None else [heatmap]) + list(extra)
        self.rows[Heatmap] += [_heatmap_row(image_id, version, h) for h in maps]
        self.rows[Flag] += [{"image_id": image_id, "model_version_id": version, "rule": f.rule,
                             "value": _finite_or_none(f.value), "threshold": _finite_or_none(f.threshold),
                             "created_at": now} for f in flags]

    def write(self, conn: Connection, images: set[int]) -> None:
        by_version: dict[int, list[int]] = {}
        for image_id, version in self.pairs:
            if image_id in images:
                by_version.setdefault(version, []).append(image_id)
        for table, rows in self.rows.items():
            for version, ids in sorted(by_version.items()):
                for start in range(0, len(ids), _IN_CHUNK):
                    conn.execute(delete(table).where(table.model_version_id == version,
                                                     table.image_id.in_(sorted(ids)[start:start + _IN_CHUNK])))
            mine = [row for row in rows if row["image_id"] in images]
            if mine:
                conn.execute(insert(table), mine)


def write_version_results(engine: Engine, results: Sequence[VersionResult]) -> int:
    """Write one model version's results of images already processed (``camwatch reprocess``) in ONE
    transaction; returns how many were written.

    Only the (image, version) rows given are replaced: the images' own state (status, primary version,
    tags) and every other version's results stay, so a rerun replaces its own rows and counts nothing
    twice. Images deleted meanwhile are skipped.
    """
    for v in results:
        if v.image_id is None:
            raise ValueError("a reprocessed result needs image_id")
        _validate_maps(v.image_id, v.heatmap, v.extra_heatmaps)
    keys = [(v.image_id, v.model_version_id) for v in results]
    if len(set(keys)) != len(keys):
        raise ValueError("the results list an (image, model version) more than once")
    now = utcnow()
    versioned = _VersionRows()
    for v in results:
        assert v.image_id is not None
        versioned.add(v.image_id, v.model_version_id, v.prediction, v.heatmap, v.extra_heatmaps, v.flags, now)
    ids = sorted({image_id for image_id, _ in keys if image_id is not None})
    with write_transaction(engine) as conn:
        present: set[int] = set()
        for start in range(0, len(ids), _IN_CHUNK):
            query = select(Image.id).where(Image.id.in_(ids[start:start + _IN_CHUNK])).order_by(Image.id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            present |= set(conn.execute(query).scalars())
        versioned.write(conn, present)
    return len(present)
