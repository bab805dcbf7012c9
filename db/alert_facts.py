"""What the alert rules and the Prometheus gauges read (:mod:`camwatch.alerts.facts`): the newest drift
results through their existing columns (``drifted``, statistic, class_index, slice, window), the summary
numbers of a drifted (statistic, slice, window), image counts over the newest window of capture time,
sources' newest registrations, heartbeats, and the claimable backlog.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, and_, exists, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from camwatch.alerts.facts import DriftContext, DriftFact, HeartbeatFact, ShareFact, SourceFact
from camwatch.alerts.rules import drift_strength
from camwatch.conventions import ALL_CLASSES, ALL_IMAGES, REFERENCE_SOURCE, parse_slice
from camwatch.monitoring.calibration import NOT_ENOUGH_DATA
from camwatch.statistics.registry import HEATMAP_KEYS, IMAGE_PROPERTY_COLUMNS
from db.models import DriftResult, Heatmap, Image, ImageTag, Reference, ReferenceMember
from db.models_ops import WorkerHeartbeat
from db.queries import current_reference_stmt
from db.versions import flag_of, of_version


def newest_reference_id(conn: Connection, model_version_id: int | None = None) -> int | None:
    """The id of :func:`db.queries.current_reference_stmt`'s reference (of the worker's primary model version
    when given, so a shadow model's drift never speaks for the primary's)."""
    return conn.execute(current_reference_stmt(model_version_id).with_only_columns(Reference.id)).scalar_one_or_none()


def drift_facts(engine: Engine, window_kind: str, windows: int, model_version_id: int | None = None) -> list[DriftFact]:
    """Decided drift results (not ``not_enough_data``) of the current reference in its ``windows`` newest
    windows of ``window_kind`` that hold a decision: a window still too small for a subject says nothing
    about it (its newest full window stands), rather than resolving or hiding its alert."""
    with engine.connect() as conn:
        ref = newest_reference_id(conn, model_version_id)
        if ref is None:
            return []
        mine = and_(DriftResult.reference_id == ref, DriftResult.window_kind == window_kind,
                    DriftResult.decision != NOT_ENOUGH_DATA)
        starts = conn.execute(select(DriftResult.window_start).distinct().where(mine)
                              .order_by(DriftResult.window_start.desc()).limit(windows)).scalars().all()
        if not starts:
            return []
        rows = conn.execute(select(DriftResult.statistic, DriftResult.class_index, DriftResult.slice,
                                   DriftResult.test, DriftResult.window_start, DriftResult.window_end,
                                   DriftResult.drifted, DriftResult.score, DriftResult.threshold)
                            .where(mine, DriftResult.window_start.in_(starts))).all()
    return [DriftFact(r.statistic, r.class_index, r.slice or ALL_IMAGES, r.test, r.window_start, r.window_end,
                      bool(r.drifted), r.score, r.threshold) for r in rows]


def _stat_column(statistic: str) -> ColumnElement[float] | None:
    if statistic in HEATMAP_KEYS:
        return getattr(Heatmap, statistic)  # type: ignore[no-any-return]
    if statistic in IMAGE_PROPERTY_COLUMNS:
        return getattr(Image, statistic)  # type: ignore[no-any-return]
    return None


def _in_slice(slice_name: str) -> ColumnElement[bool]:
    parsed = parse_slice(slice_name)
    if parsed is None:
        return Image.id.is_not(None)
    key, value = parsed
    return exists().where(ImageTag.image_id == Image.id, ImageTag.key == key, ImageTag.value == value)


def drift_context(engine: Engine, statistic: str, slice_name: str, start: dt.datetime,
                  end: dt.datetime, model_version_id: int | None = None) -> DriftContext:
    """The reference's and the window's mean of ``statistic`` (primary heatmaps, images of the slice) and
    the share of the window's processed images that are flagged."""
    column = _stat_column(statistic)
    flagged = exists().where(flag_of(model_version_id))  # flags of that version (None: the image's own)
    in_window = and_(Image.captured_at >= start, Image.captured_at < end, Image.status == "ok", _in_slice(slice_name))
    with engine.connect() as conn:
        n, n_flagged = conn.execute(select(func.count(), func.count().filter(flagged))
                                    .select_from(Image).where(in_window)).one()
        ref_mean = cur_mean = None
        ref = newest_reference_id(conn, model_version_id)
        if column is not None:
            base = select(func.avg(column)).select_from(Image).join(
                Heatmap, and_(Heatmap.image_id == Image.id, Heatmap.is_primary.is_(True),
                             of_version(Heatmap.model_version_id, model_version_id)))
            cur_mean = conn.execute(base.where(in_window)).scalar_one_or_none()
            if ref is not None:
                ref_mean = conn.execute(base.join(ReferenceMember, ReferenceMember.image_id == Image.id)
                                        .where(ReferenceMember.reference_id == ref, _in_slice(slice_name))
                                        ).scalar_one_or_none()
    return DriftContext(None if ref_mean is None else float(ref_mean), None if cur_mean is None else float(cur_mean),
                        n_flagged / n if n else None, int(n))


def share_facts(engine: Engine, window: dt.timedelta, slice_tags: Sequence[str]) -> list[ShareFact]:
    """Images done (ok or error) in the newest ``window`` of capture time, overall and per value of each of
    ``slice_tags``: done, ok, errors, flagged (reference-folder images left out)."""
    done = and_(Image.status.in_(("ok", "error")), Image.source != REFERENCE_SOURCE)
    flagged = exists().where(flag_of(None))  # flags of the image's primary version
    counts = (func.count(), func.count().filter(Image.status == "ok"), func.count().filter(Image.status == "error"),
              func.count().filter(and_(Image.status == "ok", flagged)))
    with engine.connect() as conn:
        end = conn.execute(select(func.max(Image.captured_at)).where(done)).scalar_one_or_none()
        if end is None:
            return []
        start = end - window
        recent = and_(done, Image.captured_at >= start, Image.captured_at <= end)
        rows = [(ALL_IMAGES, *conn.execute(select(*counts).where(recent)).one())]
        for key in slice_tags:
            rows += [(f"{key}={value}", total, ok, errors, n_flagged) for value, total, ok, errors, n_flagged in conn.execute(
                select(ImageTag.value, *counts).join(ImageTag, ImageTag.image_id == Image.id)
                .where(recent, ImageTag.key == key).group_by(ImageTag.value).order_by(ImageTag.value))]
    return [ShareFact(name, start, end, int(total), int(ok), int(errors), int(n_flagged))
            for name, total, ok, errors, n_flagged in rows]


def source_facts(engine: Engine, now: dt.datetime, forget: dt.timedelta) -> list[SourceFact]:
    """Each source's newest registration, for sources with images captured within ``forget`` (a range of the
    ``captured_at`` index, not a scan of every image; a replay of old captures is no live source)."""
    newest = func.max(Image.first_seen_at)
    with engine.connect() as conn:
        rows = conn.execute(select(Image.source, newest)
                            .where(Image.captured_at >= now - forget, Image.source != REFERENCE_SOURCE)
                            .group_by(Image.source).order_by(Image.source)).all()
    return [SourceFact(source, last) for source, last in rows]


def heartbeat_facts(engine: Engine, now: dt.datetime, forget: dt.timedelta) -> list[HeartbeatFact]:
    with engine.connect() as conn:
        rows = conn.execute(select(WorkerHeartbeat.worker_id, WorkerHeartbeat.hostname, WorkerHeartbeat.state,
                                   WorkerHeartbeat.last_seen_at)
                            .where(WorkerHeartbeat.last_seen_at >= now - forget)
                            .order_by(WorkerHeartbeat.worker_id)).all()
    return [HeartbeatFact(r.worker_id, r.hostname, r.state, r.last_seen_at) for r in rows]


@dataclass(frozen=True)
class DriftGauge:
    """The newest window's drift of a statistic (every class) in a slice: strength = the largest
    :func:`~camwatch.alerts.rules.drift_strength` of its tests (1 = the threshold), drifted = the stored
    decision of any of them."""

    statistic: str
    slice: str
    strength: float
    drifted: bool


def drift_gauges(engine: Engine, window_kind: str, *, slices: bool,
                 model_version_id: int | None = None) -> list[DriftGauge]:
    """Each statistic's drift in its newest window (every image, and each tested slice when ``slices``)."""
    newest: dict[tuple[str, str], list[DriftFact]] = {}
    for f in drift_facts(engine, window_kind, 1, model_version_id):
        if f.class_index == ALL_CLASSES and (slices or f.slice == ALL_IMAGES):
            newest.setdefault((f.statistic, f.slice), []).append(f)
    return [DriftGauge(stat, name, max(drift_strength(f.test, f.score, f.threshold) for f in facts),
                       any(f.drifted for f in facts))
            for (stat, name), facts in sorted(newest.items())]


def claimable_count(engine: Engine, sources: Sequence[str] | None = None) -> int:
    """Images (of ``sources``) pending or being processed: the folder sources' backlog."""
    mine = Image.source.in_(list(sources)) if sources is not None else Image.id.is_not(None)
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Image)
                                .where(Image.status.in_(("pending", "processing")), mine)).scalar_one())


def last_image_time(engine: Engine) -> dt.datetime | None:
    """When the newest image was processed (``camwatch_last_image_timestamp_seconds``)."""
    with engine.connect() as conn:
        return conn.execute(select(func.max(Image.processed_at))).scalar_one_or_none()
