"""Model versions as the dashboard sees them: which versions have results, the default one, and the join
condition that keeps a query on one version's results.

Results (predictions, heatmaps, flags) are keyed by (image, model version): an image processed by two
versions (shadow mode, ``camwatch reprocess``) has a row of each. Every query that reads results therefore
picks one version with :func:`of_version`: the version chosen on the dashboard, or, when none is chosen,
the image's own ``images.model_version_id`` (the primary version that last processed it) -- which keeps one
row per image, as before versions were kept side by side.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, exists, func, select, true
from sqlalchemy.sql import ColumnElement

from db.models import Flag, Heatmap, Image, ModelVersion, Prediction
from db.records import ClaimedImage


def of_version(column: Any, model_version_id: int | None) -> ColumnElement[bool]:
    """``column = model_version_id``, or ``column = images.model_version_id`` when no version is chosen."""
    return column == (Image.model_version_id if model_version_id is None else model_version_id)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class VersionInfo:
    """A model version with results: ``images`` processed (predictions), ``primary`` how many of them it
    processed as the primary model, its ``spec`` and ``method``."""

    id: int
    spec: str
    method: str
    created_at: dt.datetime
    images: int
    primary: int

    @property
    def label(self) -> str:
        return f"v{self.id} · {self.spec} · {self.method}"


def versions_with_results(engine: Engine) -> list[VersionInfo]:
    """Every model version that has predictions, newest first."""
    counts = (select(Prediction.model_version_id.label("mv"), func.count().label("images"))
              .group_by(Prediction.model_version_id).subquery("counts"))
    primary = (select(Image.model_version_id.label("mv"), func.count().label("primary"))
               .where(Image.model_version_id.is_not(None)).group_by(Image.model_version_id).subquery("primary"))
    stmt = (select(ModelVersion.id, ModelVersion.spec, ModelVersion.method, ModelVersion.created_at,
                   counts.c.images, func.coalesce(primary.c.primary, 0))
            .join(counts, counts.c.mv == ModelVersion.id)
            .outerjoin(primary, primary.c.mv == ModelVersion.id)
            .order_by(ModelVersion.id.desc()))
    with engine.connect() as conn:
        return [VersionInfo(int(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), int(r[5])) for r in conn.execute(stmt)]


def default_version(versions: list[VersionInfo]) -> int | None:
    """The newest version that processed images as the primary model (a shadow model never becomes the
    default by itself), else the newest version with results; None without any."""
    primary = [v.id for v in versions if v.primary > 0]
    if primary:
        return max(primary)
    return max((v.id for v in versions), default=None)


def prediction_join(model_version_id: int | None) -> ColumnElement[bool]:
    """Join condition of ``predictions`` to ``images`` for one version (see :func:`of_version`)."""
    return and_(Prediction.image_id == Image.id, of_version(Prediction.model_version_id, model_version_id))


def heatmap_join(model_version_id: int | None, *, primary: bool = True) -> ColumnElement[bool]:
    """Join condition of ``heatmaps`` (the primary ones unless ``primary`` is False) to ``images`` for one
    version (see :func:`of_version`)."""
    condition = and_(Heatmap.image_id == Image.id, of_version(Heatmap.model_version_id, model_version_id))
    return and_(condition, Heatmap.is_primary == true()) if primary else condition


def flag_of(model_version_id: int | None) -> ColumnElement[bool]:
    """Condition on a ``flags`` row joined to its image: raised on the results of one version."""
    return and_(Flag.image_id == Image.id, of_version(Flag.model_version_id, model_version_id))


def images_to_reprocess(engine: Engine, model_version_id: int, since: dt.datetime, until: dt.datetime | None,
                        sources: list[str] | None, *, after_id: int = 0, limit: int = 100,
                        redo: bool = False) -> list[ClaimedImage]:
    """Processed images (status ok, not pruned) captured in ``[since, until)`` (of ``sources`` when given)
    that have no result of ``model_version_id`` yet (``redo``: all of them), by id after ``after_id``."""
    stmt = select(Image.id, Image.uri, Image.sha256, Image.captured_at, Image.source).where(
        Image.status == "ok", Image.pruned_at.is_(None), Image.captured_at >= since, Image.id > after_id)
    if until is not None:
        stmt = stmt.where(Image.captured_at < until)
    if sources is not None:
        stmt = stmt.where(Image.source.in_(sources))
    if not redo:
        stmt = stmt.where(~exists().where(Prediction.image_id == Image.id,
                                          Prediction.model_version_id == model_version_id))
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(Image.id).limit(limit)).all()
    return [ClaimedImage(id=r.id, uri=r.uri, sha256=r.sha256, captured_at=r.captured_at, source=r.source)
            for r in rows]


def count_results(engine: Engine, model_version_id: int, since: dt.datetime, until: dt.datetime | None) -> int:
    """Images captured in ``[since, until)`` with a result of ``model_version_id``."""
    stmt = (select(func.count()).select_from(Prediction).join(Image, Image.id == Prediction.image_id)
            .where(Prediction.model_version_id == model_version_id, Image.captured_at >= since))
    if until is not None:
        stmt = stmt.where(Image.captured_at < until)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
