"""Which classes the worker explains (setting ``target``; definitions in :mod:`camwatch.heads`).

``top1`` explains the predicted class; ``label`` the image's known label (its sidecar or path label mapped
to a class index), else the predicted class; ``both`` the predicted class as the primary heatmap and, when
the label is known and differs, the label as a second heatmap from the same forward pass
(:meth:`~worker.cam.engine.CamEngine.run_many`). Each :class:`~worker.cam.engine.CamResult` returned is the
image's primary explanation; the other targets' results hang in its ``extra`` list.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from camwatch.heads import TARGET_MODES
from camwatch.statistics.heatmap import HeatmapStats
from db.records import HeatmapRecord
from worker.cam.engine import CamEngine, CamResult
from worker.cam.preprocess import Extent


def target_sets(mode: str, labels: Sequence[int | None]) -> list[list[int | None] | None]:
    """The engine's target sets for ``mode``: the first is the primary one (None: top-1 classes)."""
    if mode not in TARGET_MODES:
        raise ValueError(f"unknown target {mode!r}; choose one of {', '.join(TARGET_MODES)}")
    if mode == "top1":
        return [None]
    if mode == "label":
        return [list(labels)]
    return [None, list(labels)] if any(label is not None for label in labels) else [None]


def explain_batch(engine: CamEngine, inputs: torch.Tensor, extents: Sequence[Extent],
                  labels: Sequence[int | None], mode: str) -> list[CamResult]:
    """One primary :class:`CamResult` per image, its extent set, other targets in ``extra``."""
    runs = engine.run_many(inputs, target_sets(mode, labels))
    primary = runs[0]
    for i, (result, extent) in enumerate(zip(primary, extents, strict=True)):
        result.extent = extent
        for other in runs[1:]:
            if labels[i] is not None and other[i].target_class != result.target_class:
                other[i].extent = extent
                result.extra.append(other[i])
    return primary


def heatmap_record(cam: CamResult, stats: HeatmapStats, *, primary: bool = True) -> HeatmapRecord:
    """The stored heatmap of one explanation."""
    return HeatmapRecord(method=cam.method, target_class=cam.target_class, target_layer=cam.target_layer,
                         state=stats.state, native=cam.heatmap, extent=cam.extent, raw_max=cam.raw_max,
                         raw_sum=cam.raw_sum, target_logit=cam.target_logit, stats=stats.values,
                         is_primary=primary)
