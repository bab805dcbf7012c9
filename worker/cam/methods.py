"""The CAM family. Notation: A = activations (N, K, h, w), g = dY_c/dA, Σ_xy = sum over the grid.

Every map is ReLU'd by the engine afterwards.

- ``cam`` (Zhou et al. 2016): w_k = classifier weight of class c; needs a GAP → linear head.
- ``gradcam`` (Selvaraju et al. 2017): w_k = mean_xy g. Equals ``cam`` / (h·w) for GAP → linear heads.
- ``gradcam++`` (Chattopadhay et al. 2018): w_k = Σ_xy ReLU(g)·a, a = g² / (2g² + Σ_xy A · g³ + ε),
  a = 0 where g = 0 (as pytorch-grad-cam, eq. 19 with the exponential's derivatives approximated by powers).
- ``xgradcam`` (Fu et al. 2020): w_k = Σ_xy (g·A) / (Σ_xy A + ε).
- ``layercam`` (Jiang et al. 2021): element weights ReLU(g).
- ``hirescam`` (Draelos & Carin 2020): element weights g (no spatial averaging).
- ``eigencam`` (Muhammad & Yeasin 2020): projection of the pixel-centred activations (hw × K) on their
  first principal component; no gradients. SVD's sign is arbitrary: camwatch orients the component so
  that the projection correlates positively with the channel-summed activations (documented choice).
- ``scorecam`` (Wang et al. 2020): w_k = the head's probability of class c for the input masked by the
  upsampled, min-max normalised A_k; masks run in batches (``scorecam_batch_size``). Slow by nature:
  K forward passes per image.
- ``random``: a uniform random map, seeded from the input's bytes (deterministic, batch-order invariant);
  a baseline for metrics.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from worker.cam.base import CamContext, CamMethod, CamMethodError, register

EPS = 1e-7


def _require_grads(ctx: CamContext) -> torch.Tensor:
    if ctx.gradients is None:
        raise CamMethodError("this method needs gradients, but none were computed")
    return ctx.gradients


@register
class Cam(CamMethod):
    key = "cam"
    needs_classifier = True

    def weights(self, ctx: CamContext) -> torch.Tensor:
        if ctx.classifier_weight is None:
            raise CamMethodError("cam needs a global-average-pooling → linear head")
        return ctx.classifier_weight[ctx.targets]


@register
class GradCam(CamMethod):
    key = "gradcam"
    needs_gradients = True

    def weights(self, ctx: CamContext) -> torch.Tensor:
        return _require_grads(ctx).mean(dim=(2, 3))


@register
class GradCamPlusPlus(CamMethod):
    key = "gradcam++"
    needs_gradients = True

    def weights(self, ctx: CamContext) -> torch.Tensor:
        g = _require_grads(ctx)
        g2 = g * g
        a = g2 / (2 * g2 + ctx.activations.sum(dim=(2, 3), keepdim=True) * g2 * g + 1e-6)
        a = torch.where(g != 0, a, torch.zeros_like(a))
        return (F.relu(g) * a).sum(dim=(2, 3))


@register
class XGradCam(CamMethod):
    key = "xgradcam"
    needs_gradients = True

    def weights(self, ctx: CamContext) -> torch.Tensor:
        g = _require_grads(ctx)
        A = ctx.activations
        return (g * A).sum(dim=(2, 3)) / (A.sum(dim=(2, 3)) + EPS)


@register
class LayerCam(CamMethod):
    key = "layercam"
    needs_gradients = True

    def weights(self, ctx: CamContext) -> torch.Tensor:
        return F.relu(_require_grads(ctx))


@register
class HiResCam(CamMethod):
    key = "hirescam"
    needs_gradients = True

    def weights(self, ctx: CamContext) -> torch.Tensor:
        return _require_grads(ctx)


@register
class EigenCam(CamMethod):
    key = "eigencam"

    def combine(self, ctx: CamContext) -> torch.Tensor:
        A = ctx.activations
        n, k, h, w = A.shape
        X = A.reshape(n, k, h * w).transpose(1, 2).double()  # (N, hw, K)
        X = X - X.mean(dim=1, keepdim=True)
        _, _, vh = torch.linalg.svd(X, full_matrices=False)
        proj = torch.einsum("npk,nk->np", X, vh[:, 0, :])  # (N, hw)
        energy = A.sum(dim=1).reshape(n, h * w).double()
        energy = energy - energy.mean(dim=1, keepdim=True)
        sign = torch.sign((proj * energy).sum(dim=1, keepdim=True))
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        return (proj * sign).reshape(n, h, w).to(A.dtype)


@register
class ScoreCam(CamMethod):
    key = "scorecam"

    def weights(self, ctx: CamContext) -> torch.Tensor:
        A, x = ctx.activations, ctx.inputs
        n, k, _, _ = A.shape
        batch = int(ctx.options.get("scorecam_batch_size", 64))
        up = F.interpolate(A, size=x.shape[-2:], mode="bilinear", align_corners=False)
        flat = up.reshape(n, k, -1)
        lo, hi = flat.min(dim=2, keepdim=True).values, flat.max(dim=2, keepdim=True).values
        masks = ((flat - lo) / (hi - lo).clamp_min(EPS)).reshape_as(up)
        weights = torch.empty(n, k, dtype=A.dtype, device=A.device)
        for i in range(n):
            target = int(ctx.targets[i])
            for start in range(0, k, batch):
                m = masks[i, start:start + batch].unsqueeze(1)  # (b, 1, H, W)
                probs = ctx.probabilities(ctx.forward(x[i:i + 1] * m))
                weights[i, start:start + batch] = probs[:, target]
        return weights


@register
class RandomCam(CamMethod):
    key = "random"

    def combine(self, ctx: CamContext) -> torch.Tensor:
        n, _, h, w = ctx.activations.shape
        maps = []
        for i in range(n):
            seed = zlib.crc32(ctx.inputs[i].detach().cpu().numpy().tobytes())
            gen = torch.Generator().manual_seed(seed)
            maps.append(torch.rand(h, w, generator=gen))
        return torch.stack(maps).to(ctx.activations.device, ctx.activations.dtype)
