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

Transformers. The hooked output is converted to ``(N, K, h, w)`` by the layer's detected
:class:`~worker.cam.layout.Layout` (tokens without their prefix tokens reshaped to the patch grid, or
channels-last maps permuted) after the gradients are taken, so methods see one layout.

Heads. Scores, probabilities and positive labels come from the model's head (:mod:`worker.cam.heads`):
a single-logit binary model is explained through the scores ``[−z, z]``. Several target sets can share one
forward pass (:meth:`CamEngine.run_many`): the top-1 class and the known label, for instance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import worker.cam.methods  # noqa: F401  (registers the methods)
from worker.cam.accel import Acceleration, accelerate
from worker.cam.base import CamContext, CamMethodError, get_method
from worker.cam.heads import make_head
from worker.cam.layers import find_target_layer, get_module
from worker.cam.layout import Layout
from worker.cam.loaded import LoadedModel
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
    labels: list[int] | None = None  # positive labels by decreasing probability (multi-label heads only)
    extra: list[CamResult] = field(default_factory=list)  # the same image explained for other targets

    @property
    def predicted_class(self) -> int:
        return self.topk_indices[0]

    @property
    def confidence(self) -> float:
        return self.topk_probs[0]


class CamEngine:
    """Predictions and CAMs for batches of images with one model, one method and one target layer."""

    def __init__(self, model: LoadedModel, method: str = "gradcam", *, target_layer: str | None = None,
                 device: str | torch.device | None = None, topk: int = 5, scorecam_batch_size: int = 64,
                 acceleration: Acceleration | None = None) -> None:
        self.loaded = model
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.model = model.module.to(self.device).eval()
        self._params = list(self.model.parameters())
        self.method = get_method(method)
        self.head = make_head(model.head, model.head_threshold)
        self.topk = max(1, min(topk, model.num_classes))
        self.options = {"scorecam_batch_size": scorecam_batch_size}
        h, w = model.preprocessing.size
        example = torch.zeros(1, 3, h, w, device=self.device)
        call = find_target_layer(self.model, example, target_layer or model.target_layer)
        assert call.layout is not None
        self.target_layer = call.name
        self.layout: Layout = call.layout
        self.layer = get_module(self.model, call.name)
        self.grid = self.layout.grid
        self.classifier_weight = self._inspect_head()
        if self.method.needs_classifier and self.classifier_weight is None:
            raise CamMethodError(
                f"method 'cam' needs a global-average-pooling → linear head right after the target layer "
                f"'{self.target_layer}' (logits = W · mean_xy(A) + b); this model's head is different. "
                "Use gradcam, which works for any head.")
        # After the eager checks above; the trunk (up to the target layer) is optimised in place.
        self.acceleration = acceleration or Acceleration()
        accelerate(self.model, self.target_layer, example, self.device, self.acceleration)
        self._fp32_leaf = self.acceleration.precision != "fp32"
        log.info("CAM engine: %s, head %s, method %s, layer %s (%s), device %s, %s", model.spec, self.head.key,
                 method, self.target_layer, self.layout.describe(), self.device, self.acceleration.describe())

    # -- setup ------------------------------------------------------------------------------------
    def _inspect_head(self) -> torch.Tensor | None:
        """One forward pass of two random inputs: the logits must have the head's shape, and for a GAP → linear
        head ``W`` is verified numerically (logits == W·mean_xy(A) + b) and returned in score space (else None)."""
        h, w = self.loaded.preprocessing.size
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, h, w, generator=gen).to(self.device)
        store: dict[str, torch.Tensor] = {}
        handle = self.layer.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out.clone()))
        try:
            with torch.inference_mode():
                logits = self.model(x)
        finally:
            handle.remove()
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] != self.loaded.num_outputs:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise CamMethodError(f"{self.loaded.spec}: the model returns {got}, but its {self.head.key} head with "
                                 f"{self.loaded.num_classes} classes needs logits of shape "
                                 f"(N, {self.loaded.num_outputs})")
        name = self.loaded.classifier
        fc = get_module(self.model, name) if name is not None else None
        if not isinstance(fc, nn.Linear) or fc.in_features != self.layout.channels:
            return None
        with torch.inference_mode():
            pooled = fc(self.layout.to_nchw(store["a"]).mean(dim=(2, 3)))
        scale = float(logits.abs().max()) + 1e-6
        if pooled.shape != logits.shape or float((logits - pooled).abs().max()) > 1e-3 * scale:
            return None
        return self.head.classifier_rows(fc.weight.detach())

    # -- core -------------------------------------------------------------------------------------
    def _plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of the head for extra inputs (no hooks, no graph)."""
        with torch.inference_mode():
            return self.head.scores(self.model(x))

    def run(self, x: torch.Tensor, targets: Sequence[int | None] | None = None) -> list[CamResult]:
        """Explain a preprocessed batch ``x`` (N, 3, H, W); ``targets[i]`` None means the top-1 class."""
        return self.run_many(x, [targets])[0]

    def run_many(self, x: torch.Tensor,
                 target_sets: Sequence[Sequence[int | None] | None]) -> list[list[CamResult]]:
        """Explain ``x`` once per target set, from one forward pass: ``out[j][i]`` is image ``i`` explained
        for ``target_sets[j][i]`` (None: its top-1 class)."""
        return [self._results(maps, scores, tgt) for maps, scores, tgt in self.run_on_device(x, target_sets)]

    def run_on_device(self, x: torch.Tensor, target_sets: Sequence[Sequence[int | None] | None] = (None,),
                      ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """:meth:`run_many` without leaving the device: per target set, the raw maps ``(N, h, w)`` (fp32,
        after ReLU), the class scores ``(N, C)`` (fp32) and the targets ``(N,)``, as tensors on the engine's
        device (the GPU path computes statistics there before copying back: :mod:`worker.cam.device_stats`)."""
        x = x.to(self.device, non_blocking=True)
        if self.acceleration.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        n = x.shape[0]
        for targets in target_sets:
            if targets is not None and len(targets) != n:
                raise ValueError(f"{len(targets)} targets for {n} images")
        needs_grad = self.method.needs_gradients
        store: dict[str, torch.Tensor] = {}

        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            if not isinstance(output, torch.Tensor):
                raise CamMethodError(f"target layer '{self.target_layer}' returned {type(output).__name__}")
            # The model continues on a copy, so in-place ops after the layer (DenseNet's ReLU) neither
            # alter the stored activations nor touch the autograd leaf.
            # A reduced-precision trunk hands over fp32 activations: the head and its gradients run in fp32.
            leaf = (output.detach().float() if self._fp32_leaf else output.detach()).requires_grad_(needs_grad)
            store["a"] = leaf
            return leaf.clone()

        # Only what is on gets switched off and back on: a few hundred flags, not a walk that sets them all.
        trainable = [p for p in self._params if p.requires_grad]
        training = [m for m in self.model.modules() if m.training]
        handle = self.layer.register_forward_hook(hook)
        try:
            if training:
                self.model.eval()
            passes: list[tuple[torch.Tensor, torch.Tensor | None]] = []
            if needs_grad:
                for p in trainable:
                    p.requires_grad_(False)
                with torch.enable_grad():
                    scores = self.head.scores(self.model(x))
                    for j, targets in enumerate(target_sets):
                        tgt = self._targets(scores, targets)
                        score = scores.gather(1, tgt[:, None]).sum()
                        last = j == len(target_sets) - 1
                        (grads,) = torch.autograd.grad(score, store["a"], retain_graph=not last)
                        passes.append((tgt, self.layout.to_nchw(grads)))
                scores, acts = scores.detach(), store["a"].detach()
            else:
                with torch.inference_mode():
                    scores = self.head.scores(self.model(x))
                passes = [(self._targets(scores, targets), None) for targets in target_sets]
                acts = store["a"]
            handle.remove()
            acts = self.layout.to_nchw(acts)
            out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
            with torch.inference_mode():
                for tgt, gradients in passes:
                    ctx = CamContext(activations=acts, gradients=gradients, logits=scores, targets=tgt, inputs=x,
                                     classifier_weight=self.classifier_weight, forward=self._plain_forward,
                                     options=self.options, probabilities=self.head.probabilities)
                    out.append((F.relu(self.method.combine(ctx)).float(), scores.float(), tgt))
            return out
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
        probs = self.head.probabilities(logits)
        order = torch.sort(probs, dim=1, descending=True, stable=True)  # ties: the lower class index first
        top_p, top_i = order.values[:, :self.topk], order.indices[:, :self.topk]
        top_l = logits.gather(1, top_i)
        target_logit = logits.gather(1, tgt[:, None])[:, 0]
        positives = self.head.positives(probs)
        maps_np = maps.cpu().numpy()
        flat = maps.flatten(1)
        raw_max, raw_sum = flat.max(dim=1).values.cpu().tolist(), flat.sum(dim=1).cpu().tolist()
        cols = [t.cpu().tolist() for t in (top_i, top_l, top_p, target_logit, tgt)]
        return [
            CamResult(heatmap=maps_np[i], extent=(0.0, 0.0, 1.0, 1.0), target_class=int(cols[4][i]),
                      target_logit=float(cols[3][i]), raw_max=float(raw_max[i]), raw_sum=float(raw_sum[i]),
                      topk_indices=[int(v) for v in cols[0][i]], topk_logits=[float(v) for v in cols[1][i]],
                      topk_probs=[float(v) for v in cols[2][i]], method=self.method.key,
                      target_layer=self.target_layer, labels=None if positives is None else positives[i])
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
