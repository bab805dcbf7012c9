"""One batch of claimed images → database records: decode, annotate, CAM, statistics, flags, thumbnail.

No database access here (the service claims and commits); a bad file becomes an ``error`` result with
a readable reason and the rest of the batch goes on. :func:`prepare_batch` (decode, sidecars, resize) is
the CPU work without the model and :func:`finish_batch` the model, CAM, statistics and flags, so a caller
can overlap the two (a prefetch thread measured no gain on the 2-core CPU machine, where torch already
uses both cores; it is the natural next step with a GPU). If the engine fails on a whole batch, the images
are retried one by one so that only the image that breaks it is recorded as an error. Which classes are
explained (``target``: top-1, the known label, or both as two heatmaps) is :mod:`worker.service.targets`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from camwatch.heads import is_correct
from camwatch.imaging.decode import DecodedImage, ImageDecodeError, load_image, make_thumbnail, orient_region
from camwatch.monitoring.flags import FlagConfig, evaluate_flags
from camwatch.monitoring.reference import ReferenceSummary
from camwatch.regions import ObjectRegion
from camwatch.statistics.heatmap import StatsConfig, compute_statistics
from db.records import ClaimedImage, FlagRecord, ImageResult, PredictionRecord
from worker.cam.engine import CamEngine, CamResult
from worker.cam.preprocess import Extent
from worker.service.targets import explain_batch, heatmap_record
from worker.sources.sidecars import AnnotationConfig, Annotations, read_annotations

log = logging.getLogger(__name__)


@dataclass
class PipelineContext:
    engine: CamEngine
    model_version_id: int
    source_roots: dict[str, Path]
    annotations: AnnotationConfig = field(default_factory=AnnotationConfig)
    flags: FlagConfig = field(default_factory=FlagConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    thumbnails: str = "flagged"  # all | flagged | none
    reference: ReferenceSummary | None = None
    target: str = "top1"  # top1 | label | both (camwatch.heads)
    _label_index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._label_index = {n.lower(): i for i, n in enumerate(self.engine.loaded.class_names)}

    def label_index(self, label: str | None) -> int | None:
        if label is None:
            return None
        if label.isdigit() and int(label) < len(self._label_index):
            return int(label)
        return self._label_index.get(label.strip().lower())


@dataclass
class _Decoded:
    claim: ClaimedImage
    image: DecodedImage
    notes: Annotations
    region: ObjectRegion | None


def _decode(claim: ClaimedImage, ctx: PipelineContext) -> _Decoded:
    path = Path(claim.uri)
    root = ctx.source_roots.get(claim.source, path.parent)
    decoded = load_image(path, draft_size=max(ctx.engine.loaded.preprocessing.size))
    notes = read_annotations(path, source_root=root, config=ctx.annotations, width=decoded.raw_width,
                             height=decoded.raw_height, source_name=claim.source)
    for warning in notes.warnings:
        log.warning("%s: %s", claim.uri, warning)
    region = notes.region
    if region is not None:  # sidecars and ROIs refer to the image as stored: orient with the pixels
        region = orient_region(region, decoded.orientation, decoded.raw_width, decoded.raw_height)
    return _Decoded(claim, decoded, notes, region)


def _error(claim: ClaimedImage, reason: str) -> ImageResult:
    log.warning("image failed: %s", reason, extra={"uri": claim.uri})
    return ImageResult(image_id=claim.id, status="error", error=reason)


def _result(item: _Decoded, cam: CamResult, ctx: PipelineContext) -> ImageResult:
    d = item.image
    stats = compute_statistics(cam.heatmap, d.width, d.height, extent=cam.extent, region=item.region,
                               config=ctx.stats)
    extra = [heatmap_record(other, compute_statistics(other.heatmap, d.width, d.height, extent=other.extent,
                                                      region=item.region, config=ctx.stats), primary=False)
             for other in cam.extra]
    outcomes = evaluate_flags(stats.values, confidence=cam.confidence, class_index=cam.predicted_class,
                              native_heatmap=cam.heatmap, reference=ctx.reference, config=ctx.flags)
    flags = [FlagRecord(o.rule, o.value, o.threshold) for o in outcomes if o.flagged]
    label_index = ctx.label_index(item.notes.label)
    want_thumb = ctx.thumbnails == "all" or (ctx.thumbnails == "flagged" and flags)
    captured = item.notes.captured_at or d.captured_at
    return ImageResult(
        image_id=item.claim.id, status="ok", width=d.width, height=d.height, format=d.format,
        captured_at=captured.astimezone(dt.UTC) if captured else None,
        label=item.notes.label, label_index=label_index,
        region=item.region.to_json() if item.region is not None else None,
        tags=dict(item.notes.tags), thumbnail=make_thumbnail(d.image) if want_thumb else None,
        model_version_id=ctx.model_version_id,
        prediction=PredictionRecord(
            class_index=cam.predicted_class, confidence=cam.confidence, topk_indices=cam.topk_indices,
            topk_probs=cam.topk_probs, topk_logits=cam.topk_logits, labels=cam.labels,
            correct=is_correct(label_index, cam.predicted_class, cam.labels)),
        heatmap=heatmap_record(cam, stats), extra_heatmaps=extra,
        flags=flags,
    )


@dataclass
class PreparedBatch:
    """A claimed batch after the CPU-side work: decoded images, model input, and the files that failed."""

    claims: list[ClaimedImage]
    decoded: list[_Decoded]
    errors: dict[int, ImageResult]
    inputs: torch.Tensor | None
    extents: list[Extent]


def prepare_batch(claims: Sequence[ClaimedImage], ctx: PipelineContext) -> PreparedBatch:
    """Decode, annotate and preprocess a batch (no model): safe to run in a prefetch thread."""
    errors: dict[int, ImageResult] = {}
    decoded: list[_Decoded] = []
    for claim in claims:
        try:
            decoded.append(_decode(claim, ctx))
        except ImageDecodeError as exc:
            errors[claim.id] = _error(claim, str(exc))
    inputs, extents = (ctx.engine.prepare([i.image.image for i in decoded],
                                          [(i.image.width, i.image.height) for i in decoded])
                       if decoded else (None, []))
    return PreparedBatch(list(claims), decoded, errors, inputs, extents)


def _explain(items: Sequence[_Decoded], inputs: torch.Tensor, extents: Sequence[Extent],
             ctx: PipelineContext) -> list[CamResult]:
    labels = [ctx.label_index(i.notes.label) for i in items]
    return explain_batch(ctx.engine, inputs, extents, labels, ctx.target)


def _explain_one(item: _Decoded, ctx: PipelineContext) -> CamResult:
    inputs, extents = ctx.engine.prepare([item.image.image], [(item.image.width, item.image.height)])
    return _explain([item], inputs, extents, ctx)[0]


def finish_batch(batch: PreparedBatch, ctx: PipelineContext) -> list[ImageResult]:
    """Model, CAM, statistics and flags for a prepared batch: results for every claim, in claim order."""
    results = dict(batch.errors)
    if batch.decoded:
        assert batch.inputs is not None
        try:
            cams = _explain(batch.decoded, batch.inputs, batch.extents, ctx)
            pairs = list(zip(batch.decoded, cams, strict=True))
        except Exception:
            log.exception("CAM engine failed on a batch of %d; retrying one by one", len(batch.decoded))
            pairs = []
            for item in batch.decoded:
                try:
                    pairs.append((item, _explain_one(item, ctx)))
                except Exception as exc:  # recorded as this image's error, not swallowed
                    results[item.claim.id] = _error(item.claim, f"{item.claim.uri}: model failed "
                                                                f"({type(exc).__name__}: {exc})")
        for item, cam in pairs:
            try:
                results[item.claim.id] = _result(item, cam, ctx)
            except ValueError as exc:  # e.g. a sidecar mask whose size does not fit the image
                results[item.claim.id] = _error(item.claim, f"{item.claim.uri}: {exc}")
    return [results[c.id] for c in batch.claims]


def process_batch(claims: Sequence[ClaimedImage], ctx: PipelineContext) -> list[ImageResult]:
    """Results for every claim, in claim order: ``ok`` with everything, or ``error`` with the reason."""
    return finish_batch(prepare_batch(claims, ctx), ctx)
