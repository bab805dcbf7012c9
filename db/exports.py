"""What can be exported (``camwatch export --what KEY``, the dashboard's download buttons): a registry of
tables by stable key, each with its declared columns (:class:`camwatch.exports.Column`) and a row stream.

=========  =============================================================================================
key        rows
=========  =============================================================================================
images     every processed image (:mod:`db.export`)
reviews    every review, with the image and its prediction
flags      every flag with its value, threshold and severity, the image's prediction and latest verdict
drift      every drift result (window, statistic, class, slice, test, score, threshold, decision and why)
alerts     every alert episode (rule, subject, state, first/last seen, value, threshold, summary, links)
curated    the images confirmed as looking at the wrong region (:mod:`db.curated`; also as COCO)
=========  =============================================================================================

**Adding a table**: write a row function ``def _x_rows(engine, options) -> Iterator[dict]`` that pages
through the table by id (see :func:`_paged`), declare its columns, and register it in :data:`EXPORTS`,
as ``alerts`` is::

    ExportTable("alerts", "every alert episode", ALERT_COLUMNS, _alert_rows)

The command line, the writers (CSV, Parquet with this schema, JSON lines) and the dashboard's download
buttons need no change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import QueryableAttribute, aliased
from sqlalchemy.sql import ColumnElement

from camwatch.conventions import VERDICTS
from camwatch.exports import Column
from db.curated import CURATED_COLUMNS, curated_images
from db.export import image_columns, iter_rows
from db.models import DriftResult, Flag, Image, ModelVersion, Prediction, Reference, Review
from db.models_alerts import Alert
from db.queries import AnySelect, ImageFilter, apply_filter
from db.queries_images import flag_severity
from db.versions import flag_of, prediction_join

PAGE = 5000


@dataclass(frozen=True)
class ExportOptions:
    """``with_heatmap``: the images export carries the native heatmaps (JSON lines only); ``start``/``end``:
    capture time in ``[start, end)`` for reviews, flags and curated images, window start for drift results
    (the images export always holds every processed image)."""

    with_heatmap: bool = False
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass(frozen=True)
class ExportTable:
    key: str
    description: str
    columns: tuple[Column, ...] | Callable[[ExportOptions], tuple[Column, ...]]
    rows: Callable[[Engine, ExportOptions], Iterator[dict[str, Any]]]

    def columns_for(self, options: ExportOptions) -> tuple[Column, ...]:
        return self.columns(options) if callable(self.columns) else self.columns


def _paged(engine: Engine, stmt: AnySelect, key: QueryableAttribute[Any] | ColumnElement[Any],
           page: int = PAGE) -> Iterator[dict[str, Any]]:
    """Rows of ``stmt`` in ``key`` order, ``page`` at a time (keyset pagination: constant cost per page)."""
    after: Any = None
    while True:
        paged = stmt if after is None else stmt.where(key > after)
        with engine.connect() as conn:
            rows = conn.execute(paged.order_by(key).limit(page)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        after = rows[-1]["_key"]


def _class_name(names: list[str] | None, index: int | None) -> str | None:
    return names[index] if names and index is not None and 0 <= index < len(names) else None


def _image_filter(options: ExportOptions) -> ImageFilter:
    return ImageFilter(start=options.start, end=options.end)


REVIEW_COLUMNS: tuple[Column, ...] = (
    Column("review_id", "int"), Column("image_id", "int"), Column("uri", "str"), Column("captured_at", "datetime"),
    Column("verdict", "str"), Column("verdict_label", "str"), Column("label", "str"), Column("label_index", "int"),
    Column("note", "str"), Column("reviewer", "str"), Column("created_at", "datetime"),
    Column("class_index", "int"), Column("class_name", "str"), Column("confidence", "float"),
    Column("is_latest", "bool"),
)


def _review_rows(engine: Engine, options: ExportOptions) -> Iterator[dict[str, Any]]:
    other = aliased(Review)
    latest = select(func.max(other.id)).where(other.image_id == Review.image_id).scalar_subquery()
    stmt = apply_filter(select(Review.id.label("_key"), Review.image_id, Image.uri, Image.captured_at,
                               Review.verdict, Review.label, Review.label_index, Review.note, Review.reviewer,
                               Review.created_at, Prediction.class_index, Prediction.confidence,
                               ModelVersion.class_names, (Review.id == latest).label("is_latest"))
                        .select_from(Review).join(Image, Image.id == Review.image_id)
                        .outerjoin(Prediction, prediction_join(None))
                        .outerjoin(ModelVersion, ModelVersion.id == Image.model_version_id),
                        _image_filter(options), predictions_joined=True)
    for row in _paged(engine, stmt, Review.id):
        names = row.pop("class_names")
        row["review_id"] = row.pop("_key")
        row["verdict_label"] = VERDICTS[row["verdict"]].label if row["verdict"] in VERDICTS else None
        row["class_name"] = _class_name(names, row["class_index"])
        row["is_latest"] = bool(row["is_latest"])
        yield row


FLAG_COLUMNS: tuple[Column, ...] = (
    Column("flag_id", "int"), Column("image_id", "int"), Column("uri", "str"), Column("captured_at", "datetime"),
    Column("rule", "str"), Column("value", "float"), Column("threshold", "float"), Column("severity", "float"),
    Column("created_at", "datetime"), Column("class_index", "int"), Column("class_name", "str"),
    Column("confidence", "float"), Column("latest_verdict", "str"), Column("tags", "json"),
)


def _flag_rows(engine: Engine, options: ExportOptions) -> Iterator[dict[str, Any]]:
    latest_verdict = (select(Review.verdict).where(Review.image_id == Flag.image_id)
                      .order_by(Review.id.desc()).limit(1).scalar_subquery())
    stmt = apply_filter(select(Flag.id.label("_key"), Flag.image_id, Image.uri, Image.captured_at, Flag.rule,
                               Flag.value, Flag.threshold, flag_severity().label("severity"), Flag.created_at,
                               Prediction.class_index, Prediction.confidence, ModelVersion.class_names,
                               latest_verdict.label("latest_verdict"), Image.tags)
                        .select_from(Flag).join(Image, flag_of(None))
                        .outerjoin(Prediction, prediction_join(None))
                        .outerjoin(ModelVersion, ModelVersion.id == Image.model_version_id),
                        _image_filter(options), predictions_joined=True)
    for row in _paged(engine, stmt, Flag.id):
        names = row.pop("class_names")
        row["flag_id"] = row.pop("_key")
        row["class_name"] = _class_name(names, row["class_index"])
        row["tags"] = row["tags"] or {}
        yield row


DRIFT_COLUMNS: tuple[Column, ...] = (
    Column("result_id", "int"), Column("reference_id", "int"), Column("reference_name", "str"),
    Column("window_kind", "str"), Column("window_start", "datetime"), Column("window_end", "datetime"),
    Column("statistic", "str"), Column("class_index", "int"), Column("slice", "str"), Column("test", "str"),
    Column("score", "float"), Column("threshold", "float"), Column("drifted", "bool"),
    Column("n_reference", "int"), Column("n_current", "int"), Column("computed_at", "datetime"),
    Column("decision", "str"), Column("decision_rule", "str"), Column("raw_drifted", "bool"),
    Column("p_value", "float"), Column("q_value", "float"), Column("fdr", "float"), Column("effect_size", "float"),
    Column("effect_threshold", "float"),
)


def _drift_rows(engine: Engine, options: ExportOptions) -> Iterator[dict[str, Any]]:
    stmt = (select(DriftResult.id.label("_key"), DriftResult.reference_id, Reference.name.label("reference_name"),
                   DriftResult.window_kind, DriftResult.window_start, DriftResult.window_end, DriftResult.statistic,
                   DriftResult.class_index, DriftResult.slice, DriftResult.test, DriftResult.score,
                   DriftResult.threshold, DriftResult.drifted, DriftResult.n_reference, DriftResult.n_current,
                   DriftResult.computed_at, DriftResult.decision, DriftResult.decision_rule, DriftResult.raw_drifted,
                   DriftResult.p_value, DriftResult.q_value, DriftResult.fdr, DriftResult.effect_size,
                   DriftResult.effect_threshold)
            .join(Reference, Reference.id == DriftResult.reference_id))
    if options.start is not None:
        stmt = stmt.where(DriftResult.window_start >= options.start)
    if options.end is not None:
        stmt = stmt.where(DriftResult.window_start < options.end)
    for row in _paged(engine, stmt, DriftResult.id):
        row["result_id"] = row.pop("_key")
        row["drifted"] = bool(row["drifted"])
        row["raw_drifted"] = None if row["raw_drifted"] is None else bool(row["raw_drifted"])
        yield row


ALERT_COLUMNS: tuple[Column, ...] = (
    Column("alert_id", "int"), Column("rule", "str"), Column("statistic", "str"), Column("class_index", "int"),
    Column("slice", "str"), Column("target", "str"), Column("state", "str"), Column("first_seen", "datetime"),
    Column("last_seen", "datetime"), Column("resolved_at", "datetime"), Column("value", "float"),
    Column("threshold", "float"), Column("summary", "str"), Column("links", "json"),
    Column("notified_at", "datetime"), Column("acknowledged_by", "str"), Column("acknowledged_at", "datetime"),
    Column("silenced_until", "datetime"),
)


def _alert_rows(engine: Engine, options: ExportOptions) -> Iterator[dict[str, Any]]:
    """Alert episodes, first seen in the options' time range (the table's history, oldest first)."""
    stmt = select(Alert.id.label("_key"), *(getattr(Alert, c.name) for c in ALERT_COLUMNS[1:]))
    if options.start is not None:
        stmt = stmt.where(Alert.first_seen >= options.start)
    if options.end is not None:
        stmt = stmt.where(Alert.first_seen < options.end)
    for row in _paged(engine, stmt, Alert.id):
        row["alert_id"] = row.pop("_key")
        row["links"] = row["links"] or {}
        yield row


EXPORTS: dict[str, ExportTable] = {t.key: t for t in (
    ExportTable("images", "every processed image: prediction, statistics, image properties, flags",
                lambda o: image_columns(o.with_heatmap), lambda e, o: iter_rows(e, with_heatmap=o.with_heatmap)),
    ExportTable("reviews", "every review with its image and prediction", REVIEW_COLUMNS, _review_rows),
    ExportTable("flags", "every flag with its value, threshold, severity and the latest verdict", FLAG_COLUMNS,
                _flag_rows),
    ExportTable("drift", "every drift result", DRIFT_COLUMNS, _drift_rows),
    ExportTable("alerts", "every alert episode: rule, subject, state, value, threshold, summary", ALERT_COLUMNS,
                _alert_rows),
    ExportTable("curated", "images confirmed as looking at the wrong region, with their boxes", CURATED_COLUMNS,
                lambda e, o: curated_images(e, _image_filter(o))),
)}


def export_table(key: str) -> ExportTable:
    """The registered table ``key``, with an error listing the known ones."""
    try:
        return EXPORTS[key]
    except KeyError:
        raise ValueError(f"unknown export {key!r}; registered: {', '.join(EXPORTS)}") from None
