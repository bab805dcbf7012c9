"""Activation layouts: how a layer's output becomes the ``(N, K, h, w)`` map the CAM methods work on.

Three layouts are recognised, each with an exact conversion (:meth:`Layout.to_nchw`):

- ``nchw``: convolutional feature maps ``(N, C, h, w)``, used as they are.
- ``nhwc``: channels-last maps ``(N, h, w, C)`` (Swin in torchvision and timm, LayerNorm/Linear outputs on
  a spatial grid), permuted to ``(N, C, h, w)``.
- ``tokens``: transformer token sequences ``(N, R + P, D)``: ``R`` prefix tokens (class, distillation,
  register tokens; timm's ``num_prefix_tokens``) followed by ``P = h·w`` patch tokens in row-major grid
  order. The prefix tokens are dropped and the patch tokens reshaped to ``(N, D, h, w)`` (pytorch-grad-cam's
  ``reshape_transform`` convention).

The layout is *detected*, never guessed: a channels-last ``(N, 7, 7, 768)`` read as ``(N, C, H, W)`` gives a
plausible-looking but wrong 7 × 768 map. Evidence, all of which must agree (:func:`detect_layout`):

1. Geometry. A spatial grid ``(h, w)`` must come from the input ``(H, W)`` by one integer stride ``s``
   (``h ∈ {⌊H/s⌋, ⌈H/s⌉}``, same for ``w``). Of the two readings of a 4-D output, ``(N, a, b, c)`` as NCHW
   (grid ``b × c``) or NHWC (grid ``a × b``), usually only one passes; for tokens, the prefix count
   ``R`` (declared by the model, or ``T − P`` for the grid ``P`` of the patch-embedding convolution) must
   leave ``T − R`` patches that form exactly one such grid.
2. Structure. The module that produced the tensor (the layer itself, else the nearest earlier module with an
   output of the same shape) tells where its channels are: convolutions and batch norms always put them at
   dim 1; a LayerNorm/Linear/GroupNorm whose feature count matches exactly one of dim 1 and dim −1 puts them
   there (timm's ``LayerNorm2d`` normalises dim 1 and is read correctly).
3. A probe, only when 1 and 2 leave both 4-D readings open: the model is traced at twice the input size;
   spatial axes grow, channels do not. Models that accept one input size only cannot be probed.

When the evidence leaves no reading, or two, :class:`LayoutError` says so and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

LayoutKind = Literal["nchw", "nhwc", "tokens"]
Shape = tuple[int, ...]

#: Prefix tokens an undeclared model may have (class + distillation + registers); more is not inferred.
MAX_INFERRED_PREFIX = 16
_CHANNELS_FIRST = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.SyncBatchNorm)


class LayoutError(ValueError):
    """The layout of a layer's output cannot be determined (the message says why)."""


@dataclass(frozen=True)
class Layout:
    """How one layer's output maps to ``(N, channels, *grid)``; ``prefix`` tokens are dropped (tokens only)."""

    kind: LayoutKind
    grid: tuple[int, int]
    channels: int
    prefix: int = 0

    def describe(self) -> str:
        h, w = self.grid
        if self.kind == "tokens":
            return f"tokens: {self.prefix} prefix + {h}×{w} patches, {self.channels} dims"
        return f"{'channels-last ' if self.kind == 'nhwc' else ''}{self.channels}×{h}×{w}"

    def native_shape(self) -> Shape:
        """The output shape without the batch dimension."""
        h, w = self.grid
        if self.kind == "tokens":
            return (self.prefix + h * w, self.channels)
        return (h, w, self.channels) if self.kind == "nhwc" else (self.channels, h, w)

    def to_nchw(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` in this layout → ``(N, channels, h, w)`` (a view for nchw/nhwc; patch tokens reshaped)."""
        if tuple(t.shape[1:]) != self.native_shape():
            raise LayoutError(f"expected a layer output of shape (N, {', '.join(map(str, self.native_shape()))}) "
                              f"({self.describe()}), got {tuple(t.shape)}; the input size must not change "
                              "after the engine is built")
        if self.kind == "nchw":
            return t
        if self.kind == "nhwc":
            return t.permute(0, 3, 1, 2)
        h, w = self.grid
        return t[:, self.prefix:, :].reshape(t.shape[0], h, w, self.channels).permute(0, 3, 1, 2)


# ------------------------------------------------------------------------------------------------ geometry


def grid_fits(h: int, w: int, size: tuple[int, int]) -> bool:
    """Whether some integer stride ``s`` maps an input of ``size`` (H, W) to a ``h × w`` grid (floor or ceil)."""
    H, W = size
    if h < 1 or w < 1 or h > H or w > W:
        return False
    lo, hi = max(1, H // (h + 1)), H // max(h - 1, 1) + 1
    return any(h in (H // s, -(-H // s)) and w in (W // s, -(-W // s)) for s in range(lo, min(hi, H) + 1))


def token_grids(patches: int, size: tuple[int, int]) -> list[tuple[int, int]]:
    """Every ``h × w = patches`` grid that fits the input (see :func:`grid_fits`)."""
    if patches < 2:
        return []
    return [(h, patches // h) for h in range(1, patches + 1)
            if patches % h == 0 and grid_fits(h, patches // h, size)]


# ---------------------------------------------------------------------------------------- what models say


def declared_prefix_tokens(model: nn.Module) -> int | None:
    """Prefix tokens a model declares: timm's ``num_prefix_tokens``, torchvision's ViT class token, Hugging Face
    embeddings (``cls_token``, ``distillation_token``, ``register_tokens``); None when it declares nothing."""
    n = getattr(model, "num_prefix_tokens", None)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    if isinstance(getattr(model, "class_token", None), torch.Tensor) and hasattr(model, "conv_proj"):
        return 1  # torchvision.models.VisionTransformer
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] == "embeddings" and hasattr(module, "patch_embeddings"):
            count = sum(isinstance(getattr(module, a, None), torch.Tensor) for a in ("cls_token", "distillation_token"))
            registers = getattr(module, "register_tokens", None)
            if isinstance(registers, torch.Tensor):
                count += int(registers.shape[1])
            return count
    return None


def _channel_dim(module: nn.Module, shape: Shape) -> int | None:
    """Where ``module``'s output keeps its channels (1 or −1), when its type and sizes say so exactly."""
    if isinstance(module, _CHANNELS_FIRST):
        return 1
    count = None
    if isinstance(module, nn.LayerNorm) and module.normalized_shape:
        count = module.normalized_shape[-1]
    elif isinstance(module, nn.Linear):
        count = module.out_features
    elif isinstance(module, nn.GroupNorm):
        count = module.num_channels
    if count is None:
        return None
    first, last = shape[1] == count, shape[-1] == count
    return None if first == last else (1 if first else -1)


@dataclass(frozen=True)
class Traced:
    """One traced module output: name, shape, completion order and the module."""

    name: str
    shape: Shape
    order: int
    module: nn.Module


def structural_channel_dim(target: Traced, earlier: Sequence[Traced]) -> tuple[int | None, str]:
    """Channel dim (1 / −1) said by the layer, else the nearest earlier module with the same output shape."""
    for t in [target, *sorted(earlier, key=lambda e: -e.order)]:
        if t.shape != target.shape:
            continue
        dim = _channel_dim(t.module, t.shape)
        if dim is not None:
            return dim, f"{type(t.module).__name__} '{t.name}'"
    return None, "no module with a known channel axis produced this shape"


# ------------------------------------------------------------------------------------------- detection


def _four_d(target: Traced, earlier: Sequence[Traced], size: tuple[int, int],
            probe: Callable[[], Mapping[str, Shape] | None]) -> Layout:
    _, a, b, c = target.shape
    readings = {"nchw": Layout("nchw", (b, c), a), "nhwc": Layout("nhwc", (a, b), c)}
    fits = {k for k, r in readings.items() if grid_fits(*r.grid, size) and r.grid[0] * r.grid[1] > 1}
    dim, why = structural_channel_dim(target, earlier)
    said = {1: {"nchw"}, -1: {"nhwc"}, None: set(readings)}[dim]
    open_ = fits & said
    if len(open_) == 2:
        bigger = probe()
        shape = None if bigger is None else bigger.get(target.name)
        if shape is not None and len(shape) == 4:
            grew = [shape[i] > target.shape[i] for i in (1, 2, 3)]
            open_ = {k for k, g in (("nchw", [False, True, True]), ("nhwc", [True, True, False])) if g == grew} & open_
            why += f"; at twice the input size the output is {tuple(shape)}"
        else:
            why += "; the model could not be probed at another input size"
    if len(open_) == 1:
        return readings[open_.pop()]
    if not fits:
        raise LayoutError(f"'{target.name}' outputs {target.shape}: neither {b}×{c} (channels first) nor {a}×{b} "
                          f"(channels last) is a spatial grid of the {size[0]}×{size[1]} input")
    if not open_:
        raise LayoutError(f"'{target.name}' outputs {target.shape}: the grid that fits the input contradicts {why}")
    raise LayoutError(f"'{target.name}' outputs {target.shape}, which reads as channels-first ({a}×{b}×{c}) or "
                      f"channels-last ({c}×{a}×{b}) equally well ({why}); choose a layer whose channel count "
                      "differs from its grid size")


def _tokens(target: Traced, earlier: Sequence[Traced], size: tuple[int, int], declared: int | None) -> Layout:
    _, T, D = target.shape
    if declared is not None:
        prefixes = {0, declared}
    else:  # the grid of a patch-embedding convolution with D output channels
        conv = [e.shape for e in earlier if isinstance(e.module, nn.Conv2d) and len(e.shape) == 4 and e.shape[1] == D]
        prefixes = {0} | {T - s[2] * s[3] for s in conv if 0 < T - s[2] * s[3] <= MAX_INFERRED_PREFIX}
    options = [(r, g) for r in sorted(prefixes) if T - r >= 2 for g in token_grids(T - r, size)]
    if len(options) == 1:
        r, g = options[0]
        return Layout("tokens", g, D, r)
    source = f"{declared} declared" if declared is not None else "none declared"
    if not options:
        raise LayoutError(f"'{target.name}' outputs {T} tokens of {D} dims; no count of prefix tokens ({source}) "
                          f"leaves patches that tile the {size[0]}×{size[1]} input on a grid")
    readings = ", ".join(f"{r} prefix + {g[0]}×{g[1]}" for r, g in options)
    raise LayoutError(f"'{target.name}' outputs {T} tokens that read as {readings} ({source} prefix tokens); "
                      "cannot tell which")


def detect_layout(target: Traced, earlier: Sequence[Traced], size: tuple[int, int], *,
                  declared_prefix: int | None = None,
                  probe: Callable[[], Mapping[str, Shape] | None] = lambda: None) -> Layout:
    """The layout of ``target``'s output (batch of one) for an input of ``size`` (H, W).

    ``earlier`` are the modules that completed before it (structural evidence, patch-embedding grids),
    ``declared_prefix`` the model's own prefix-token count (:func:`declared_prefix_tokens`) and ``probe``
    a callable returning every module's output shape at twice the input size (None when the model refuses).
    Raises :class:`LayoutError` when the output is not a spatial map or its layout is undecidable.
    """
    shape = target.shape
    if shape and shape[0] != 1:
        raise LayoutError(f"'{target.name}' outputs {shape}: its first dimension is not the batch")
    if len(shape) == 4:
        return _four_d(target, earlier, size, probe)
    if len(shape) == 3:
        return _tokens(target, earlier, size, declared_prefix)
    raise LayoutError(f"'{target.name}' outputs shape {shape}, not a spatial map (N, C, H, W), (N, H, W, C) or "
                      "tokens (N, T, D)")
