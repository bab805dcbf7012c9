"""Shared fixtures: a few small real photos and tiny fixed-weight models (no downloads)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from worker.models import LoadedModel
from worker.preprocess import Preprocessing

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Real photographs shipped with scikit-image."""
    from skimage import data

    return {
        "chelsea": Image.fromarray(data.chelsea()),
        "coffee": Image.fromarray(data.coffee()),
        "astronaut": Image.fromarray(data.astronaut()),
        "rocket": Image.fromarray(data.rocket()),
    }


class TinyNet(nn.Module):
    """conv → ReLU → conv → ReLU → GAP → linear, fixed seeded weights: a GAP → linear head."""

    def __init__(self, num_classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.body(x)), 1))


class TinyMlpHead(TinyNet):
    """Same trunk, but a non-linear head (GAP → linear → ReLU → linear): ``cam`` must refuse it."""

    def __init__(self, num_classes: int = 5, seed: int = 0) -> None:
        super().__init__(num_classes=16, seed=seed)
        self.head2 = nn.Sequential(nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head2(super().forward(x))


def tiny_loaded(module: nn.Module, num_classes: int = 5, size: int = 32, classifier: str | None = "fc") -> LoadedModel:
    return LoadedModel(module=module.eval(), class_names=[f"c{i}" for i in range(num_classes)],
                       preprocessing=Preprocessing(size=(size, size)), spec="tiny", classifier=classifier)


@pytest.fixture()
def tiny_model() -> LoadedModel:
    return tiny_loaded(TinyNet())


@pytest.fixture(scope="session")
def lite0() -> LoadedModel:
    from worker.models import load_model

    return load_model("efficientnet_lite0")


def random_images(n: int, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]
