"""The CAM method interface: one small class per method, one hook that returns weights.

A method sees a :class:`CamContext` — the hooked activations ``A`` (N, K, h, w), optionally their
gradients ``dY/dA`` for the target scores, the class scores (logits; ``[−z, z]`` for a binary head), the
head's probability function and the targets — and returns weights, either per
channel ``(N, K)`` or per element ``(N, K, h, w)``. The engine combines them as ``M = ReLU(Σ_k w_k ⊙ A_k)``
and owns everything else: hooks, the forward/backward passes, ReLU, normalisation, resizing, cleanup.
Methods whose map is not a weighted channel sum (EigenCAM, the random baseline) override ``combine``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from camwatch.methods import CAM_METHODS


class CamMethodError(ValueError):
    """The method cannot explain this model (e.g. ``cam`` on a head that is not GAP → linear)."""


@dataclass
class CamContext:
    activations: torch.Tensor  # (N, K, h, w), detached
    gradients: torch.Tensor | None  # (N, K, h, w) of sum_n logit[n, target_n], or None
    logits: torch.Tensor  # (N, C) class scores of the head
    targets: torch.Tensor  # (N,) long
    inputs: torch.Tensor  # (N, 3, H, W), the model inputs
    classifier_weight: torch.Tensor | None  # (C, K) for GAP -> linear heads, else None
    forward: Callable[[torch.Tensor], torch.Tensor]  # class scores for extra inputs (no hooks, no grad)
    options: dict
    probabilities: Callable[[torch.Tensor], torch.Tensor] = lambda scores: torch.softmax(scores, dim=1)  # the head's


class CamMethod:
    """Base class. Subclasses set ``key`` (one of :data:`camwatch.methods.CAM_METHODS`) and implement
    ``weights`` (or override ``combine``)."""

    key: ClassVar[str]
    needs_gradients: ClassVar[bool] = False
    needs_classifier: ClassVar[bool] = False

    @property
    def label(self) -> str:
        return CAM_METHODS[self.key].label

    def weights(self, ctx: CamContext) -> torch.Tensor:
        raise NotImplementedError

    def combine(self, ctx: CamContext) -> torch.Tensor:
        """Raw map before ReLU, (N, h, w)."""
        w = self.weights(ctx)
        if w.dim() == 2:
            return torch.einsum("nk,nkhw->nhw", w, ctx.activations)
        return (w * ctx.activations).sum(dim=1)


METHODS: dict[str, type[CamMethod]] = {}


def register(cls: type[CamMethod]) -> type[CamMethod]:
    if cls.key not in CAM_METHODS:
        raise ValueError(f"CAM method {cls.key!r} is not in camwatch.methods.CAM_METHODS; add it there first")
    if cls.key in METHODS:
        raise ValueError(f"CAM method {cls.key!r} registered twice")
    METHODS[cls.key] = cls
    return cls


def get_method(key: str) -> CamMethod:
    try:
        return METHODS[key]()
    except KeyError:
        raise CamMethodError(f"unknown CAM method {key!r}; choose one of {', '.join(METHODS)}") from None
