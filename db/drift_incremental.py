"""Queries of incremental drift maintenance: the drift state of a reference and window kind, the capture
times of images processed since a watermark, and the images of one window. Each is a range of an index
led by the model version (``ix_images_model_version_id_processed_at``, ``..._captured_at``, revision
0007) whose cost follows the images it returns, never the whole history (without them SQLite picks the
status index, which every processed image shares); counting the images before a point (count windows) is
the exception: a count over the index. A version's images are those it processed as the primary model
(``images.model_version_id``, the indexed path); ``by_results=True`` takes instead those holding a result
of the version (a shadow model's or ``camwatch reprocess``'s: a prediction row, looked up by primary key
from the capture- or processing-time index); :func:`worker.service.monitor.recompute_drift` decides what to recompute with them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Select, exists, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from db.models import Image, Prediction
from db.models_drift import DriftState
from db.session import dialect_insert, write_transaction
from db.types import utcnow


@dataclass(frozen=True)
class DriftStateRow:
    """What the last drift pass of a reference and window kind left (see :class:`db.models_drift.DriftState`)."""

    watermark: dt.datetime | None
    reference_built_at: dt.datetime | None
    settings_key: str
    windows_last_pass: int
    passes: int


def read_drift_state(engine: Engine, reference_id: int, window_kind: str) -> DriftStateRow | None:
    with engine.connect() as conn:
        row = conn.execute(select(DriftState.watermark, DriftState.reference_built_at, DriftState.settings_key,
                                  DriftState.windows_last_pass, DriftState.passes)
                           .where(DriftState.reference_id == reference_id,
                                  DriftState.window_kind == window_kind)).one_or_none()
    return None if row is None else DriftStateRow(*row)


def write_drift_state(engine: Engine, reference_id: int, window_kind: str, *, watermark: dt.datetime | None,
                      reference_built_at: dt.datetime | None, settings_key: str, windows: int) -> None:
    """Upsert the state after a pass (``passes`` counts up)."""
    values = {"reference_id": reference_id, "window_kind": window_kind, "watermark": watermark,
              "reference_built_at": reference_built_at, "settings_key": settings_key, "windows_last_pass": windows,
              "passes": 1, "updated_at": utcnow()}
    with write_transaction(engine) as conn:
        stmt = dialect_insert(conn.dialect.name, DriftState).values(**values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["reference_id", "window_kind"],
            set_={"watermark": stmt.excluded.watermark, "reference_built_at": stmt.excluded.reference_built_at,
                  "settings_key": stmt.excluded.settings_key, "windows_last_pass": stmt.excluded.windows_last_pass,
                  "updated_at": stmt.excluded.updated_at, "passes": DriftState.passes + 1}))


def of_version(model_version_id: int, by_results: bool = False) -> ColumnElement[bool]:
    """The images of a model version: processed by it as the primary model, or (``by_results``) holding a
    result of it."""
    if by_results:
        return exists().where(Prediction.image_id == Image.id, Prediction.model_version_id == model_version_id)
    return Image.model_version_id == model_version_id


def _ok(by_results: bool) -> ColumnElement[bool]:
    """``status = 'ok'``; with ``by_results`` written as ``status || '' = 'ok'``, which no index serves, so
    SQLite (without table statistics) reads the capture- or processing-time range instead of the status
    index that every processed image shares."""
    return (Image.status + "" if by_results else Image.status) == "ok"


def _held(model_version_id: int, by_results: bool = False) -> Select:
    return select(Image.id).where(_ok(by_results), of_version(model_version_id, by_results),
                                  Image.pruned_at.is_(None))


def since_statement(model_version_id: int, after: dt.datetime, by_results: bool = False) -> Select:
    """The query of :func:`processed_since` (a range of ``ix_images_model_version_id_processed_at``)."""
    return (select(Image.captured_at, Image.processed_at)
            .where(Image.processed_at > after, _ok(by_results), of_version(model_version_id, by_results),
                   Image.pruned_at.is_(None)))


def window_statement(model_version_id: int, start: dt.datetime, end: dt.datetime, by_results: bool = False) -> Select:
    """The query of :func:`window_image_ids` (a range of ``ix_images_model_version_id_captured_at``)."""
    return (_held(model_version_id, by_results).where(Image.captured_at >= start, Image.captured_at < end)
            .order_by(Image.captured_at, Image.id))


def processed_since(engine: Engine, model_version_id: int, after: dt.datetime,
                    by_results: bool = False) -> list[tuple[dt.datetime, dt.datetime]]:
    """``(captured_at, processed_at)`` of the held processed images of a model version processed after
    ``after``."""
    stmt = since_statement(model_version_id, after, by_results)
    with engine.connect() as conn:
        return [(c, p) for c, p in conn.execute(stmt) if p is not None]


def latest_processed_at(engine: Engine, model_version_id: int, by_results: bool = False) -> dt.datetime | None:
    """The newest ``processed_at`` of the model version's processed images (the watermark of a full pass)."""
    stmt = select(func.max(Image.processed_at)).where(Image.status == "ok", of_version(model_version_id, by_results))
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one_or_none()


def window_image_ids(engine: Engine, model_version_id: int, start: dt.datetime, end: dt.datetime,
                     by_results: bool = False) -> list[int]:
    """Held processed images captured in ``[start, end)``, in capture-time order (ties by id)."""
    stmt = window_statement(model_version_id, start, end, by_results)
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def count_captured_before(engine: Engine, model_version_id: int, before: dt.datetime, by_results: bool = False) -> int:
    """How many held processed images were captured before ``before`` (count windows: the position of the
    first touched image; an index-only count)."""
    stmt = select(func.count()).select_from(_held(model_version_id, by_results).where(Image.captured_at < before)
                                            .subquery())
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def ordered_from(engine: Engine, model_version_id: int, offset: int,
                 by_results: bool = False) -> list[tuple[int, dt.datetime]]:
    """``(id, captured_at)`` of the held processed images from position ``offset`` in capture order on."""
    stmt = (select(Image.id, Image.captured_at)
            .where(Image.status == "ok", of_version(model_version_id, by_results), Image.pruned_at.is_(None))
            .order_by(Image.captured_at, Image.id).offset(offset))
    with engine.connect() as conn:
        return [(int(i), c) for i, c in conn.execute(stmt)]
