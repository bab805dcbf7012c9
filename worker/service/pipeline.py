"""One batch of claimed images → database records: read, decode, sidecars, model and CAM, statistics and
flags, thumbnail.

No database access here (the service claims and commits). Fault isolation: each image goes through the
stages of :data:`STAGES` and any exception in a stage becomes *that image's* ``error`` result with a
readable reason (the stage, the exception's class and message; never file contents) while the batch goes
on. The model runs on a whole chunk at once; if it fails there, the images are retried one by one so that
only the image that breaks it is recorded as an error. (The ``write`` stage is the service's,
:mod:`worker.service.writer`.)

Memory: decoded pixels held at once are bounded by ``max_batch_pixels``: the claimed images are decoded in
order and sent through the model in chunks whose decoded pixels stay within the budget (an image over the
budget on its own forms a chunk of one). The files are read confined to their source roots and their
bytes checked against the registered sha256 (:mod:`worker.service.intake`).
Which classes are explained (``target``: top-1, the known label, or both as two heatmaps) is
:mod:`worker.service.targets`.

Shadow mode: each context of ``shadows`` is another model (its engine, model version, reference) run on the
same decoded chunk after the primary; its results go into the image's ``shadows`` and are committed in the
same transaction. A shadow model that fails on an image costs that image only a warning (the primary's
result stands); the image is never explained twice by the same model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from camwatch.capture_time import choose_capture_time, from_mtime_ns
from camwatch.files import UnsafeFile
from camwatch.heads import is_correct
from camwatch.imaging.decode import DecodedImage, ImageDecodeError, load_image, make_thumbnail, orient_region
from camwatch.imaging.properties import image_properties
from camwatch.monitoring.flags import FlagConfig, evaluate_flags
from camwatch.monitoring.reference import ReferenceSummary
from camwatch.regions import ObjectRegion
from camwatch.statistics.heatmap import StatsConfig, compute_statistics
from db.records import ClaimedImage, FileFound, FlagRecord, ImageResult, PredictionRecord, VersionResult
from db.types import utcnow
from worker.cam.engine import CamEngine, CamResult
from worker.service.intake import ContentChanged, read_claimed
from worker.service.targets import explain_batch, heatmap_record
from worker.sources.sidecars import AnnotationConfig, Annotations, read_annotations

log = logging.getLogger(__name__)

#: The stages an image goes through; an error reason names the one that failed.
STAGES = ("read", "decode", "sidecar", "model", "statistics", "write")
_REASON_CHARS = 300


class StageObserver(Protocol):
    """Told how long each stage took and which stage an image failed in (the worker's Prometheus metrics,
    :mod:`worker.service.metrics`): read, decode, sidecar and statistics per image, model per pass over a
    chunk."""

    def stage_seconds(self, stage: str, seconds: float) -> None: ...

    def stage_error(self, stage: str) -> None: ...


@dataclass
class PipelineContext:
    engine: CamEngine
    model_version_id: int
    #: Source name → the roots its images may be read from (a folder: its root; a queue: its spool and
    #: its allowed roots); a claimed image is read only under one of them.
    source_roots: dict[str, tuple[Path, ...]]
    annotations: AnnotationConfig = field(default_factory=AnnotationConfig)
    flags: FlagConfig = field(default_factory=FlagConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    thumbnails: str = "flagged"  # all | flagged | none
    reference: ReferenceSummary | None = None
    max_image_bytes: int = 256 << 20
    max_batch_pixels: int = 100_000_000
    clock: Callable[[], dt.datetime] = utcnow
    #: By image id: what a queue event carried about the image (replaces its sidecars); set per batch.
    event_annotations: dict[int, Annotations] = field(default_factory=dict)
    target: str = "top1"  # top1 | label | both (camwatch.heads)
    #: Shadow mode: the other models, each a context of its own (engine, model version, reference).
    shadows: list[PipelineContext] = field(default_factory=list)
    observer: StageObserver | None = None
    _label_index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._label_index = {n.lower(): i for i, n in enumerate(self.engine.loaded.class_names)}

    def timed(self, stage: str, began: float) -> float:
        """Report ``stage``'s duration since ``began`` (a ``perf_counter``); returns now."""
        now = time.perf_counter()
        if self.observer is not None:
            self.observer.stage_seconds(stage, now - began)
        return now

    def fail(self, claim: ClaimedImage, stage: str, exc: BaseException | str) -> ImageResult:
        """:func:`failed`, told to the observer."""
        if self.observer is not None:
            self.observer.stage_error(stage)
        return failed(claim, stage, exc)

    def label_index(self, label: str | None) -> int | None:
        if label is None:
            return None
        text = label.strip()
        if text.isascii() and text.isdigit() and int(text) < len(self._label_index):
            return int(text)
        return self._label_index.get(text.lower())


@dataclass
class BatchOutcome:
    """Results for every claim, in claim order, and the files whose content changed since they were
    registered (to register again)."""

    results: list[ImageResult]
    changed: list[FileFound] = field(default_factory=list)


@dataclass
class _Decoded:
    claim: ClaimedImage
    image: DecodedImage
    notes: Annotations
    region: ObjectRegion | None
    mtime: dt.datetime | None = None

    @property
    def pixels(self) -> int:
        return int(self.image.image.width) * int(self.image.image.height)


def explain_failure(exc: BaseException) -> str:
    """A one-line reason for ``exc``: our own readable reasons as they are, others as ``Class: message``."""
    if isinstance(exc, ImageDecodeError | UnsafeFile):
        return exc.reason
    if isinstance(exc, ContentChanged):
        return str(exc)
    message = " ".join(str(exc).split())[:_REASON_CHARS]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def failed(claim: ClaimedImage, stage: str, exc: BaseException | str) -> ImageResult:
    """The ``error`` result of ``claim`` for a failure in ``stage`` (logged with the uri)."""
    detail = exc if isinstance(exc, str) else explain_failure(exc)
    known = isinstance(exc, str | ImageDecodeError | UnsafeFile | ContentChanged)
    reason = f"{claim.uri}: {detail}" if known else f"{claim.uri}: {stage} failed ({detail})"
    log.warning("image failed in the %s stage: %s", stage, reason, extra={"uri": claim.uri, "stage": stage})
    return ImageResult(image_id=claim.id, status="error", error=reason)


def _prepare(claim: ClaimedImage, ctx: PipelineContext, results: dict[int, ImageResult],
             changed: list[FileFound]) -> _Decoded | None:
    """Read, decode and annotate one image; on failure its error goes into ``results`` and None is returned."""
    roots = ctx.source_roots.get(claim.source)
    if not roots:
        results[claim.id] = ctx.fail(claim, "read", f"its source {claim.source!r} is not one of this worker's")
        return None
    root = next((r for r in roots if Path(claim.uri).is_relative_to(r)), roots[0])
    stage = "read"
    began = time.perf_counter()
    try:
        read = read_claimed(claim, root, ctx.max_image_bytes)
        path, data = read.path, read.data
        mtime = None if read.mtime_ns is None else from_mtime_ns(read.mtime_ns)
        del read
        began = ctx.timed(stage, began)
        stage = "decode"
        decoded = load_image(path, data=data, draft_size=max(ctx.engine.loaded.preprocessing.size))
        del data  # the bytes are not needed once decoded
        began = ctx.timed(stage, began)
        stage = "sidecar"
        notes = ctx.event_annotations.get(claim.id) or read_annotations(
            path, source_root=root, config=ctx.annotations, width=decoded.raw_width, height=decoded.raw_height,
            source_name=claim.source)
        region = notes.region
        if region is not None:  # sidecars and ROIs refer to the image as stored: orient with the pixels
            region = orient_region(region, decoded.orientation, decoded.raw_width, decoded.raw_height)
        ctx.timed(stage, began)
    except ContentChanged as exc:
        changed.append(exc.found)
        results[claim.id] = ctx.fail(claim, stage, exc)
        return None
    except Exception as exc:  # this image's error, recorded; the batch goes on
        results[claim.id] = ctx.fail(claim, stage, exc)
        return None
    for warning in notes.warnings:
        log.warning("%s", warning, extra={"uri": claim.uri})
    return _Decoded(claim, decoded, notes, region, mtime)


def _capture_time(item: _Decoded, ctx: PipelineContext) -> tuple[dt.datetime, list[str]]:
    moment, _, warnings = choose_capture_time(
        [("sidecar", item.notes.captured_at), ("EXIF", item.image.captured_at),
         ("file modification time", item.mtime), ("registration", item.claim.captured_at)], ctx.clock())
    return moment, warnings


def _version(item: _Decoded, cam: CamResult, ctx: PipelineContext) -> VersionResult:
    """One model's results of an image: prediction, heatmaps with their statistics, flags."""
    d = item.image
    stats = compute_statistics(cam.heatmap, d.width, d.height, extent=cam.extent, region=item.region,
                               config=ctx.stats)
    extra = [heatmap_record(other, compute_statistics(other.heatmap, d.width, d.height, extent=other.extent,
                                                      region=item.region, config=ctx.stats), primary=False)
             for other in cam.extra]
    outcomes = evaluate_flags(stats.values, confidence=cam.confidence, class_index=cam.predicted_class,
                              native_heatmap=cam.heatmap, reference=ctx.reference, config=ctx.flags)
    label_index = ctx.label_index(item.notes.label)
    return VersionResult(
        model_version_id=ctx.model_version_id,
        prediction=PredictionRecord(
            class_index=cam.predicted_class, confidence=cam.confidence, topk_indices=cam.topk_indices,
            topk_probs=cam.topk_probs, topk_logits=cam.topk_logits, labels=cam.labels,
            correct=is_correct(label_index, cam.predicted_class, cam.labels)),
        heatmap=heatmap_record(cam, stats), extra_heatmaps=extra,
        flags=[FlagRecord(o.rule, o.value, o.threshold) for o in outcomes if o.flagged])


def _result(item: _Decoded, cam: CamResult, ctx: PipelineContext) -> ImageResult:
    d = item.image
    version = _version(item, cam, ctx)
    flags = version.flags
    label_index = ctx.label_index(item.notes.label)
    want_thumb = ctx.thumbnails == "all" or (ctx.thumbnails == "flagged" and flags)
    captured, time_warnings = _capture_time(item, ctx)
    for warning in time_warnings:
        log.warning("%s", warning, extra={"uri": item.claim.uri})
    return ImageResult(
        image_id=item.claim.id, status="ok", width=d.width, height=d.height, format=d.format,
        captured_at=captured, label=item.notes.label, label_index=label_index,
        region=item.region.to_json() if item.region is not None else None,
        tags=dict(item.notes.tags), thumbnail=make_thumbnail(d.image) if want_thumb else None,
        model_version_id=ctx.model_version_id, prediction=version.prediction, heatmap=version.heatmap,
        extra_heatmaps=version.extra_heatmaps, flags=flags, properties=dict(image_properties(d.image)), camera_model=d.camera_model,
        warnings=[*d.warnings, *item.notes.warnings, *time_warnings],
    )


def _explain(chunk: list[_Decoded], ctx: PipelineContext) -> list[CamResult]:
    """One pass over ``chunk``: the primary explanation of each image, other targets in its ``extra``."""
    inputs, extents = ctx.engine.prepare([i.image.image for i in chunk],
                                         [(i.image.width, i.image.height) for i in chunk])
    return explain_batch(ctx.engine, inputs, extents, [ctx.label_index(i.notes.label) for i in chunk], ctx.target)


def _model(chunk: list[_Decoded], ctx: PipelineContext, results: dict[int, ImageResult]
           ) -> list[tuple[_Decoded, CamResult]]:
    """CAM results of a chunk from one pass; after a failure, one pass per image (errors into ``results``)."""
    began = time.perf_counter()
    try:
        pairs = list(zip(chunk, _explain(chunk, ctx), strict=True))
        ctx.timed("model", began)
        return pairs
    except Exception:
        if len(chunk) > 1:
            log.exception("CAM engine failed on a batch of %d; retrying one by one", len(chunk))
    pairs = []
    for item in chunk:
        try:
            pairs.append((item, _explain([item], ctx)[0]))
        except Exception as exc:  # recorded as this image's error, not swallowed
            results[item.claim.id] = ctx.fail(item.claim, "model", exc)
    return pairs


def _finish(chunk: list[_Decoded], ctx: PipelineContext, results: dict[int, ImageResult]) -> None:
    for item, cam in _model(chunk, ctx, results):
        began = time.perf_counter()
        try:
            results[item.claim.id] = _result(item, cam, ctx)
            ctx.timed("statistics", began)
        except Exception as exc:  # e.g. a sidecar mask whose size does not fit the image
            results[item.claim.id] = ctx.fail(item.claim, "statistics", exc)
    done = [item for item in chunk if item.claim.id in results and results[item.claim.id].status == "ok"]
    for shadow in ctx.shadows:
        _shadow(done, shadow, results)


def _shadow(chunk: list[_Decoded], shadow: PipelineContext, results: dict[int, ImageResult]) -> None:
    """A shadow model's results of the images the primary explained, added to their ``shadows``; a failure
    becomes a warning of the image (the primary's result stands)."""
    failures: dict[int, ImageResult] = {}
    notes: dict[int, str] = {}
    for item, cam in _model(chunk, shadow, failures) if chunk else []:
        try:
            version = _version(item, cam, shadow)
        except Exception as exc:  # this image's shadow result is left out, said in its warnings
            notes[item.claim.id] = explain_failure(exc)
            continue
        result = results[item.claim.id]
        results[item.claim.id] = dataclasses.replace(result, shadows=[*result.shadows, version])
    notes.update({image_id: r.error or "failed" for image_id, r in failures.items()})
    for image_id, reason in notes.items():
        result = results[image_id]
        warning = f"shadow model version {shadow.model_version_id} left out: {reason}"[:_REASON_CHARS]
        results[image_id] = dataclasses.replace(result, warnings=[*result.warnings, warning])


def process_batch(claims: Sequence[ClaimedImage], ctx: PipelineContext) -> BatchOutcome:
    """Results for every claim, in claim order: ``ok`` with everything, or ``error`` with the reason."""
    results: dict[int, ImageResult] = {}
    changed: list[FileFound] = []
    chunk: list[_Decoded] = []
    pixels = 0
    for claim in claims:
        item = _prepare(claim, ctx, results, changed)
        if item is None:
            continue
        if chunk and pixels + item.pixels > ctx.max_batch_pixels:
            _finish(chunk, ctx, results)
            chunk, pixels = [], 0
        chunk.append(item)
        pixels += item.pixels
    if chunk:
        _finish(chunk, ctx, results)
    return BatchOutcome([results[c.id] for c in claims], changed)
