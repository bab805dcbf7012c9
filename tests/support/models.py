"""Tiny fixed-weight models (no downloads) and random images for the worker's tests.

``build`` is also a model factory for the worker's own loader, as a subprocess would use it:
``--model python:tests/support/models.py:build``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from worker.cam.models import LoadedModel
from worker.cam.preprocess import Preprocessing

#: The model spec of :func:`build` for ``--model`` / ``Settings.model``.
TINY_SPEC = "python:tests/support/models.py:build"


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


def random_images(n: int, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def build() -> tuple[nn.Module, dict]:
    """Factory for ``python:`` model specs: :class:`TinyNet` at 32x32."""
    return TinyNet(num_classes=5, seed=0), {"size": [32, 32]}


#: A second version of the tiny model (other seeded weights): shadow mode and version comparisons.
TINY_V2_SPEC = "python:tests/support/models.py:build_v2"


def build_v2() -> tuple[nn.Module, dict]:
    """Factory of :data:`TINY_V2_SPEC`: :class:`TinyNet` with other weights, same classes and size."""
    return TinyNet(num_classes=5, seed=1), {"size": [32, 32]}
