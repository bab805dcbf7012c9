"""Re-running a time range of processed images with another model (``camwatch reprocess``).

The images are read again from their original files -- confined to the configured roots and checked against
the registered sha256, as the worker reads them -- and explained with the given model; the results are
written under that model's own version (:func:`db.results.write_version_results`), next to the results
every other version already has. Thumbnails are not enough: a model needs the full image, so an image whose
file is gone, changed or outside the roots is reported and left without a result of this version.

Idempotent: images that already have a result of this version are skipped (``redo`` replaces them), and a
result replaces only its own (image, version) rows, so a rerun never counts an image twice. The images'
own state (status, primary version, tags) is not touched, and no claim is taken: the worker's exactly-once
processing of new images goes on meanwhile. When done, the version's reference and drift are brought up to
date as the worker would (no drift until the version's reference exists).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from camwatch.conventions import REFERENCE_SOURCE
from camwatch.settings import Settings
from db.monitoring import ensure_reference
from db.records import VersionResult
from db.results import write_version_results
from db.versions import images_to_reprocess
from worker.cam.engine import CamEngine
from worker.service.monitor import recompute_drift
from worker.service.pipeline import PipelineContext, process_batch
from worker.sources.queue.notes import event_annotations
from worker.sources.sidecars import AnnotationConfig

log = logging.getLogger(__name__)

#: Said with every image that could not be read again.
ORIGINALS_NEEDED = ("reprocessing reads the original files: they must still be readable under the configured "
                    "roots (source folders, the queue spool, allowed roots); stored thumbnails are not enough")


@dataclass
class ReprocessReport:
    """What a run did: ``written`` images, ``failed`` (image id → reason), ``drift`` result rows."""

    model_version_id: int
    written: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    drift: int = 0


def source_roots(settings: Settings) -> dict[str, tuple[Path, ...]]:
    """Where the images of each source may be read: a folder source's root (by its name, the folder's name),
    the reference folder; any other source name (a queue) gets the spool and the allowed roots."""
    roots: dict[str, tuple[Path, ...]] = {}
    for location in settings.source:
        if "://" not in location or location.startswith("file://"):
            path = Path(location.removeprefix("file://")).resolve()
            roots[path.name] = (path,)
    if settings.reference.folder is not None:
        roots[REFERENCE_SOURCE] = (settings.reference.folder.resolve(),)
    return roots


def _queue_roots(settings: Settings) -> tuple[Path, ...]:
    return (settings.queue.spool_dir.resolve(), *(p.resolve() for p in settings.allowed_roots))


def reprocess(db: Engine, settings: Settings, cam: CamEngine, model_version_id: int, since: dt.datetime,
              until: dt.datetime | None, sources: list[str] | None = None, *, redo: bool = False) -> ReprocessReport:
    """Explain the processed images captured in ``[since, until)`` with ``cam`` and store the results under
    ``model_version_id`` (see the module docstring)."""
    report = ReprocessReport(model_version_id)
    roots = source_roots(settings)
    handle = ensure_reference(db, settings.reference, model_version_id, cam.method.key)
    ctx = PipelineContext(
        engine=cam, model_version_id=model_version_id, source_roots=roots,
        annotations=AnnotationConfig(path_tags=list(settings.path_tags),
                                     roi={k: tuple(v) for k, v in settings.roi.items()},  # type: ignore[misc]
                                     max_sidecar_bytes=settings.max_sidecar_bytes,
                                     max_coco_bytes=settings.max_coco_bytes, max_boxes=settings.max_boxes),
        flags=settings.flags, thumbnails="none", reference=None if handle is None else handle.summary,
        max_image_bytes=settings.max_image_bytes, max_batch_pixels=settings.max_batch_pixels, target=settings.target)
    after = 0
    while True:
        claims = images_to_reprocess(db, model_version_id, since, until, sources, after_id=after,
                                     limit=settings.batch_size, redo=redo)
        if not claims:
            break
        after = claims[-1].id
        queue_roots = _queue_roots(settings)
        for claim in claims:  # queue images: under the spool or the allowed roots
            if claim.source not in ctx.source_roots and any(Path(claim.uri).is_relative_to(r) for r in queue_roots):
                ctx.source_roots[claim.source] = queue_roots
        ctx.event_annotations = event_annotations(db, [c.id for c in claims])
        outcome = process_batch(claims, ctx)
        versions = [VersionResult(model_version_id=model_version_id, prediction=r.prediction, heatmap=r.heatmap,
                                  extra_heatmaps=r.extra_heatmaps, flags=r.flags, image_id=r.image_id)
                    for r in outcome.results if r.status == "ok" and r.prediction is not None]
        report.failed.update({r.image_id: r.error or "failed" for r in outcome.results if r.status != "ok"})
        report.written += write_version_results(db, versions) if versions else 0
        log.info("reprocessed %d images so far with model version %d (%d could not be read)", report.written,
                 model_version_id, len(report.failed))
    if report.failed:
        log.warning("%d images were left without a result of model version %d: %s", len(report.failed),
                    model_version_id, ORIGINALS_NEEDED)
    handle = ensure_reference(db, settings.reference, model_version_id, cam.method.key)
    if handle is not None:
        report.drift = recompute_drift(db, settings, handle, model_version_id, full=True, by_results=True)
    return report
