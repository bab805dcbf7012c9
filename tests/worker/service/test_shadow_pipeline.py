"""Shadow models in the pipeline: each image explained by every model in one pass over its decoded pixels,
and a shadow model that fails on an image costs that image only a warning."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from db.records import ClaimedImage
from db.types import utcnow
from tests.support.models import TinyNet, tiny_loaded
from worker.cam.engine import CamEngine
from worker.service.pipeline import PipelineContext, process_batch


class FailsOnBright(TinyNet):
    """TinyNet that raises for any image brighter than mid-grey (the test's one white image)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x.flatten(1).mean(1) > 1.0).any()):
            raise RuntimeError("shadow model broke")
        return super().forward(x)


def _claims(folder: Path, n: int) -> list[ClaimedImage]:
    rng = np.random.default_rng(0)
    claims = []
    for i in range(n):
        path = folder / f"p{i}.png"
        pixels = np.full((40, 48, 3), 255, np.uint8) if i == 1 else rng.integers(0, 128, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        claims.append(ClaimedImage(id=i + 1, uri=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                                   captured_at=utcnow(), source="src"))
    return claims


def _context(root: Path, model: TinyNet, version: int) -> PipelineContext:
    return PipelineContext(engine=CamEngine(tiny_loaded(model), "gradcam", device="cpu"), model_version_id=version,
                           source_roots={"src": (root,)}, thumbnails="none")


def test_every_image_gets_each_shadow_models_result_as_that_model_alone(tmp_path: Path) -> None:
    claims = _claims(tmp_path, 4)
    ctx = _context(tmp_path, TinyNet(seed=0), 1)
    ctx.shadows = [dataclasses.replace(_context(tmp_path, TinyNet(seed=1), 2), shadows=[])]
    results = process_batch(claims, ctx).results
    alone = process_batch(claims, _context(tmp_path, TinyNet(seed=1), 2)).results
    for shadowed, single in zip(results, alone, strict=True):
        assert shadowed.status == "ok" and shadowed.model_version_id == 1
        (shadow,) = shadowed.shadows
        assert shadow.model_version_id == 2 and shadow.prediction == single.prediction
        assert shadow.heatmap is not None and single.heatmap is not None
        np.testing.assert_array_equal(shadow.heatmap.native, single.heatmap.native)
        assert shadow.heatmap.stats == pytest.approx(single.heatmap.stats, nan_ok=True)
        assert [f.rule for f in shadow.flags] == [f.rule for f in single.flags]


def test_a_failing_shadow_model_costs_the_image_a_warning_only(tmp_path: Path) -> None:
    claims = _claims(tmp_path, 3)
    ctx = _context(tmp_path, TinyNet(seed=0), 1)
    ctx.shadows = [_context(tmp_path, FailsOnBright(seed=1), 2)]
    results = process_batch(claims, ctx).results
    assert [r.status for r in results] == ["ok"] * 3
    assert [len(r.shadows) for r in results] == [1, 0, 1]
    assert any("shadow model version 2 left out" in w and "shadow model broke" in w for w in results[1].warnings)
    assert not any("shadow" in w for r in (results[0], results[2]) for w in r.warnings)
