"""The CAM engine: N images in → N predictions and N class activation maps, from one forward pass.

Cost model. Gradient methods differentiate only the *head* (the layers after the target layer): during
the pass every parameter has ``requires_grad=False``, so the trunk records no autograd graph at all;
the hook replaces the target layer's output by a detached leaf that requires grad, and
``torch.autograd.grad`` differentiates the summed target logits with respect to that leaf only (no
parameter gradients). For a GAP → linear head this costs about one forward pass. Gradient-free
methods run under ``torch.inference_mode``. No graph survives a call.

Safety. Hooks are removed, parameter flags and the model's train/eval mode restored in ``finally``,
also when an exception is raised.

Outputs keep the *raw* native map (after ReLU, before any normalisation) with its max, sum and the target
logit, because drift in magnitude matters; normalised maps are derived from it downstream.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import worker.cam.methods  # noqa: F401  (registers the methods)
from worker.cam.base import CamContext, CamMethodError, get_method
from worker.cam.layers import find_target_layer, get_module
from worker.cam.models import LoadedModel
from worker.cam.preprocess import Extent

log = logging.getLogger(__name__)


def pick_device(requested: str | None = None) -> torch.device:
    if requested and requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class CamResult:
    """One image's prediction and heatmap."""

    heatmap: np.ndarray  # (h, w) float32, raw units, after ReLU
    extent: Extent
    target_class: int
    target_logit: float
    raw_max: float
    raw_sum: float
    topk_indices: list[int]
    topk_logits: list[float]
    topk_probs: list[float]
    method: str
    target_layer: str

    @property
    def predicted_class(self) -> int:
        return self.topk_indices[0]

    @property
    def confidence(self) -> float:
        return self.topk_probs[0]


class CamEngine:
    """Predictions and CAMs for batches of images with one model, one method and one target layer."""

    def __init__(self, model: LoadedModel, method: str = "gradcam", *, target_layer: str | None = None,
                 device: str | torch.device | None = None, topk: int = 5, scorecam_batch_size: int = 64) -> None:
        self.loaded = model
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.model = model.module.to(self.device).eval()
        self._params = list(self.model.parameters())
        self.method = get_method(method)
        self.topk = max(1, min(topk, model.num_classes))
        self.options = {"scorecam_batch_size": scorecam_batch_size}
        h, w = model.preprocessing.size
        example = torch.zeros(1, 3, h, w, device=self.device)
        call = find_target_layer(self.model, example, target_layer or model.target_layer)
        self.target_layer = call.name
        self.layer = get_module(self.model, call.name)
        self.grid = (call.shape[2], call.shape[3]) if call.shape else (0, 0)
        self.classifier_weight = self._classifier_weight(call.shape[1] if call.shape else 0)
        if self.method.needs_classifier and self.classifier_weight is None:
            raise CamMethodError(
                f"method 'cam' needs a global-average-pooling → linear head right after the target layer "
                f"'{self.target_layer}' (logits = W · mean_xy(A) + b); this model's head is different. "
                "Use gradcam, which works for any head.")
        log.info("CAM engine: %s, method %s, layer %s (grid %dx%d), device %s", model.spec, method,
                 self.target_layer, *self.grid, self.device)

    # -- setup ------------------------------------------------------------------------------------
    def _classifier_weight(self, channels: int) -> torch.Tensor | None:
        """W of a GAP → linear head, verified numerically: logits == W·mean_xy(A) + b on a test input."""
        name = self.loaded.classifier
        if name is None:
            return None
        fc = get_module(self.model, name)
        if not isinstance(fc, nn.Linear) or fc.in_features != channels:
            return None
        h, w = self.loaded.preprocessing.size
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, h, w, generator=gen).to(self.device)
        store: dict[str, torch.Tensor] = {}
        handle = self.layer.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out.clone()))
        try:
            with torch.inference_mode():
                logits = self.model(x)
                pooled = fc(store["a"].mean(dim=(2, 3)))
        finally:
            handle.remove()
        scale = float(logits.abs().max()) + 1e-6
        if pooled.shape != logits.shape or float((logits - pooled).abs().max()) > 1e-3 * scale:
            return None
        return fc.weight.detach()

    # -- core -------------------------------------------------------------------------------------
    def _plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(x)

    def run(self, x: torch.Tensor, targets: Sequence[int | None] | None = None) -> list[CamResult]:
        """Explain a preprocessed batch ``x`` (N, 3, H, W); ``targets[i]`` None means the top-1 class."""
        x = x.to(self.device, non_blocking=True)
        n = x.shape[0]
        if targets is not None and len(targets) != n:
            raise ValueError(f"{len(targets)} targets for {n} images")
        needs_grad = self.method.needs_gradients
        store: dict[str, torch.Tensor] = {}

        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            if not isinstance(output, torch.Tensor):
                raise CamMethodError(f"target layer '{self.target_layer}' returned {type(output).__name__}")
            # The model continues on a copy, so in-place ops after the layer (DenseNet's ReLU) neither
            # alter the stored activations nor touch the autograd leaf.
            leaf = output.detach().requires_grad_(needs_grad)
            store["a"] = leaf
            return leaf.clone()

        # Only what is on gets switched off and back on: a few hundred flags, not a walk that sets them all.
        trainable = [p for p in self._params if p.requires_grad]
        training = [m for m in self.model.modules() if m.training]
        handle = self.layer.register_forward_hook(hook)
        try:
            if training:
                self.model.eval()
            if needs_grad:
                for p in trainable:
                    p.requires_grad_(False)
                with torch.enable_grad():
                    logits = self.model(x)
                    tgt = self._targets(logits, targets)
                    score = logits.gather(1, tgt[:, None]).sum()
                    (grads,) = torch.autograd.grad(score, store["a"])
                logits, acts = logits.detach(), store["a"].detach()
            else:
                with torch.inference_mode():
                    logits = self.model(x)
                tgt = self._targets(logits, targets)
                acts, grads = store["a"], None
            handle.remove()
            with torch.inference_mode():
                ctx = CamContext(activations=acts, gradients=grads, logits=logits, targets=tgt, inputs=x,
                                 classifier_weight=self.classifier_weight, forward=self._plain_forward,
                                 options=self.options)
                maps = F.relu(self.method.combine(ctx)).float()
                return self._results(maps, logits.float(), tgt)
        finally:
            handle.remove()
            for p in trainable:
                p.requires_grad_(True)
            for m in training:  # exactly the modules that were training, mixed modes included
                m.training = True

    def _targets(self, logits: torch.Tensor, targets: Sequence[int | None] | None) -> torch.Tensor:
        top1 = logits.argmax(dim=1)
        if targets is None:
            return top1
        n_classes = logits.shape[1]
        out = top1.clone()
        for i, t in enumerate(targets):
            if t is not None:
                if not 0 <= int(t) < n_classes:
                    raise ValueError(f"target class {t} is outside 0..{n_classes - 1}")
                out[i] = int(t)
        return out

    def _results(self, maps: torch.Tensor, logits: torch.Tensor, tgt: torch.Tensor) -> list[CamResult]:
        probs = torch.softmax(logits, dim=1)
        top_p, top_i = probs.topk(self.topk, dim=1)
        top_l = logits.gather(1, top_i)
        target_logit = logits.gather(1, tgt[:, None])[:, 0]
        maps_np = maps.cpu().numpy()
        flat = maps.flatten(1)
        raw_max, raw_sum = flat.max(dim=1).values.cpu().tolist(), flat.sum(dim=1).cpu().tolist()
        cols = [t.cpu().tolist() for t in (top_i, top_l, top_p, target_logit, tgt)]
        return [
            CamResult(heatmap=maps_np[i], extent=(0.0, 0.0, 1.0, 1.0), target_class=int(cols[4][i]),
                      target_logit=float(cols[3][i]), raw_max=float(raw_max[i]), raw_sum=float(raw_sum[i]),
                      topk_indices=[int(v) for v in cols[0][i]], topk_logits=[float(v) for v in cols[1][i]],
                      topk_probs=[float(v) for v in cols[2][i]], method=self.method.key,
                      target_layer=self.target_layer)
            for i in range(maps_np.shape[0])
        ]

    # -- images -----------------------------------------------------------------------------------
    def prepare(self, images: Sequence[Image.Image],
                original_sizes: Sequence[tuple[int, int] | None] | None = None) -> tuple[torch.Tensor, list[Extent]]:
        pre = self.loaded.preprocessing
        sizes = original_sizes or [None] * len(images)
        prepared = [pre.prepare(img, size) for img, size in zip(images, sizes, strict=True)]
        return pre.to_tensor([a for a, _ in prepared]), [e for _, e in prepared]

    def explain(self, images: Sequence[Image.Image], targets: Sequence[int | None] | None = None,
                original_sizes: Sequence[tuple[int, int] | None] | None = None) -> list[CamResult]:
        """Preprocess RGB images and explain them; each result carries its image's extent."""
        if not images:
            return []
        x, extents = self.prepare(images, original_sizes)
        results = self.run(x, targets)
        for result, extent in zip(results, extents, strict=True):
            result.extent = extent
        return results
