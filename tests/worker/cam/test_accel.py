"""Optimised inference (worker/cam/accel.py) against the eager fp32 engine on real photographs: the maps
agree (Pearson r > 0.999) and the top-1 class is the same.

channels-last runs on the packaged EfficientNet-Lite0; ``torch.compile`` (a minute of compilation for
EfficientNet-Lite0 on a 2-core machine) on a small seeded CNN whose target layer sits inside a stage, so
that the compiled trunk is the target layer *and* the modules before it; reduced precision needs CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.support.models import tiny_loaded
from worker.cam.accel import Acceleration, trunk_modules
from worker.cam.engine import CamEngine
from worker.cam.models import load_model


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


class StageNet(nn.Module):
    """stem → stage (conv, BN, ReLU, conv, ReLU) → GAP → linear, seeded; explained at ``stage.3``."""

    def __init__(self, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                   nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stage(self.stem(x))), 1))


def stage_engine(acceleration: Acceleration | None = None, device: str = "cpu") -> CamEngine:
    loaded = tiny_loaded(StageNet(), num_classes=10, size=96)
    return CamEngine(loaded, "gradcam", target_layer="stage.3", device=device, acceleration=acceleration)


def assert_parity(eager: CamEngine, fast: CamEngine, images: list) -> None:
    x, _ = eager.prepare(images)
    expected, got = eager.run(x), fast.run(x)
    for a, b in zip(expected, got, strict=True):
        assert a.predicted_class == b.predicted_class
        assert pearson(a.heatmap, b.heatmap) > 0.999
        assert b.heatmap.dtype == np.float32


def test_the_trunk_is_the_target_layer_and_what_runs_before_it() -> None:
    model = StageNet().eval()
    example = torch.zeros(1, 3, 64, 64)
    # Independent expectation: stem runs first, then stage.0..2 before stage.3; stage.4, pool, fc after it.
    assert sorted(trunk_modules(model, "stage.3", example)) == ["stage.0", "stage.1", "stage.2", "stage.3", "stem"]
    assert sorted(trunk_modules(model, "stage", example)) == ["stage", "stem"]


def test_channels_last_matches_eager_on_efficientnet(lite0, photos) -> None:
    images = [photos["chelsea"], photos["coffee"], photos["astronaut"]]
    fast = CamEngine(load_model("efficientnet_lite0"), "gradcam", acceleration=Acceleration(channels_last=True))
    assert fast.model.get_submodule("fc").weight.is_contiguous()
    conv = next(m for m in fast.model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert_parity(CamEngine(lite0, "gradcam"), fast, images)


def test_compiled_trunk_matches_eager_and_keeps_the_hook_outside(photos) -> None:
    images = [photos["chelsea"], photos["coffee"], photos["rocket"]]
    fast = stage_engine(Acceleration(compile=True, channels_last=True))
    assert_parity(stage_engine(), fast, images)
    assert_parity(stage_engine(), fast, images[:1])  # another batch size: recompiled, still right
    # The hook on the target layer was registered and removed around the compiled forward: none is left.
    assert not fast.layer._forward_hooks
    assert all(p.requires_grad for p in fast.model.parameters())  # flags restored


def test_reduced_precision_is_refused_on_a_cpu() -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        stage_engine(Acceleration(precision="bf16"))
    with pytest.raises(ValueError, match="choose one of"):
        stage_engine(Acceleration(precision="int8"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="autocast parity needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_trunk_with_fp32_head_matches_eager_on_cuda(lite0, photos, precision: str) -> None:
    images = [photos["chelsea"], photos["coffee"], photos["astronaut"]]
    fast = CamEngine(load_model("efficientnet_lite0"), "gradcam", device="cuda",
                     acceleration=Acceleration(precision=precision, channels_last=True))
    eager = CamEngine(load_model("efficientnet_lite0"), "gradcam", device="cuda")
    assert_parity(eager, fast, images)
    assert fast.model.get_submodule("fc").weight.dtype == torch.float32
