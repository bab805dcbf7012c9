"""Target-layer detection: which module's output to explain, and in which layout (:mod:`worker.cam.layout`).

One example forward pass records, per named module, its call count and output shape. A module is a
*candidate* when it is called exactly once per forward pass (a module shared between stem and head, as in
the lukemelas EfficientNet code, would capture several tensors) and its output is a spatial map whose
layout :func:`~worker.cam.layout.detect_layout` can determine: ``(N, C, H, W)`` with ``H·W > 1``,
channels-last ``(N, H, W, C)``, or tokens ``(N, R + H·W, D)``.

Default choice, in this order:

1. Transformers (a module whose class name ends in ``Attention``, or ``nn.MultiheadAttention``, producing
   tokens or a channels-last map): in the block that holds the *last* attention module, the first norm
   (ViT, DeiT, hybrids: pytorch-grad-cam's convention; only the class token feeds the head, so the last
   block's output carries no gradient to the patch tokens) or, for windowed attention (an attention module
   with a ``window_size``: Swin), the second norm (torchcam found the first one background-heavy on Swin-T).
2. Otherwise the *last module to finish* among the candidates: parents finish after their children, so a
   stage container (``layer4``, ``features``) wins over its last block; global pooling (``H·W = 1``) and
   everything after it is excluded.

An override (``--target-layer``) that is no candidate gets an error listing the last candidates.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, replace

import torch
from torch import nn

from worker.cam.layout import Layout, LayoutError, Shape, Traced, declared_prefix_tokens, detect_layout

log = logging.getLogger(__name__)


class TargetLayerError(ValueError):
    """The target layer cannot be used; the message lists candidates."""


@dataclass(frozen=True)
class ModuleCall:
    name: str
    calls: int
    shape: tuple[int, ...] | None  # output shape of the last call, None if not a tensor
    order: int  # completion order of the last call
    layout: Layout | None = None  # set on the layer find_target_layer returns

    @property
    def is_spatial(self) -> bool:
        """A channels-first spatial map (the layout before any detection)."""
        return self.shape is not None and len(self.shape) == 4 and self.shape[2] * self.shape[3] > 1


def trace_modules(model: nn.Module, example: torch.Tensor) -> list[ModuleCall]:
    """Forward ``example`` once and record, per named module, call count and output shape."""
    records: dict[str, list] = {}
    counter = [0]
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            counter[0] += 1
            rec = records.setdefault(name, [0, None, 0])
            rec[0] += 1
            rec[1] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
            rec[2] = counter[0]
        return hook

    was_training = model.training
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        model.eval()
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    calls = [ModuleCall(name, rec[0], rec[1], rec[2]) for name, rec in records.items()]
    return sorted(calls, key=lambda c: c.order)


class _Layers:
    """The traced modules of one model and the layouts of their outputs (probe run at most once)."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        self.model, self.example = model, example
        self.calls = trace_modules(model, example)
        self.size = (int(example.shape[2]), int(example.shape[3]))
        self.modules = dict(model.named_modules())
        self.declared = declared_prefix_tokens(model)
        self.traced = [Traced(c.name, c.shape, c.order, self.modules[c.name]) for c in self.calls if c.shape]
        self._probed: dict[str, Shape] | None = None
        self._probe_done = False
        self._layouts: dict[str, Layout | LayoutError] = {}

    def probe(self) -> dict[str, Shape] | None:
        """Output shapes at twice the input size, or None when the model refuses that size."""
        if not self._probe_done:
            self._probe_done = True
            h, w = self.size
            try:
                bigger = torch.zeros(1, 3, 2 * h, 2 * w, dtype=self.example.dtype, device=self.example.device)
                self._probed = {c.name: c.shape for c in trace_modules(self.model, bigger) if c.shape}
            except Exception as exc:  # a fixed-size model (position embeddings); the caller reports it
                log.info("layout probe at %dx%d not possible: %s: %s", 2 * h, 2 * w, type(exc).__name__, exc)
        return self._probed

    def layout(self, call: ModuleCall) -> Layout:
        """The layout of ``call``'s output; raises :class:`LayoutError`."""
        known = self._layouts.get(call.name)
        if known is None:
            if call.shape is None:
                known = LayoutError(f"'{call.name}' does not return a tensor")
            else:
                target = Traced(call.name, call.shape, call.order, self.modules[call.name])
                earlier = [t for t in self.traced if t.order < call.order]
                try:
                    known = detect_layout(target, earlier, self.size, declared_prefix=self.declared, probe=self.probe)
                except LayoutError as exc:
                    known = exc
            self._layouts[call.name] = known
        if isinstance(known, LayoutError):
            raise known
        return known

    def usable(self, call: ModuleCall) -> ModuleCall | None:
        if call.calls != 1 or call.shape is None or len(call.shape) not in (3, 4):
            return None
        try:
            return replace(call, layout=self.layout(call))
        except LayoutError:
            return None

    def candidates(self) -> list[ModuleCall]:
        return [c for c in (self.usable(call) for call in self.calls) if c is not None]

    def last_candidate(self) -> ModuleCall | None:
        """The last module to finish among the candidates (layouts are decided from the end only)."""
        return next((c for c in (self.usable(call) for call in reversed(self.calls)) if c is not None), None)

    def listing(self) -> str:
        """The last candidates with their layouts, and the default choice."""
        candidates = self.candidates()
        if not candidates:
            return "none"
        default = self.transformer_default() or candidates[-1]  # what find_target_layer would choose
        shown = ", ".join(f"{c.name} ({c.layout.describe()})" for c in candidates[-8:] if c.layout)
        return f"{shown}; default: {default.name}"

    def transformer_default(self) -> ModuleCall | None:
        """The last attention block's first norm (second for windowed attention), when usable."""
        attention = [c for c in self.calls if _is_attention(self.modules[c.name])]
        if not attention or "." not in attention[-1].name:
            return None
        last = attention[-1]  # the outermost attention module of the last block: parents finish last
        block = last.name.rsplit(".", 1)[0]
        inside_attention = f"{last.name}."
        norms = [c for c in self.calls if c.name.startswith(f"{block}.") and not c.name.startswith(inside_attention)
                 and "Norm" in type(self.modules[c.name]).__name__]
        windowed = any(hasattr(m, "window_size") for m in self.modules[last.name].modules())
        index = 1 if windowed else 0
        if len(norms) <= index:
            return None
        chosen = self.usable(norms[index])
        if chosen is None or chosen.layout is None or chosen.layout.kind == "nchw":
            return None  # not a transformer's token / channels-last output: the convolutional rule applies
        return chosen


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention")


def find_target_layer(model: nn.Module, example: torch.Tensor, override: str | None = None) -> ModuleCall:
    """The layer to explain, with its :class:`~worker.cam.layout.Layout`: ``override`` (dotted name) if given
    and usable, else the default (module docstring)."""
    layers = _Layers(model, example)
    if override is None:
        chosen = layers.transformer_default()
        if chosen is not None:
            return chosen
        last = layers.last_candidate()
        if last is None:
            raise TargetLayerError("no module produces a spatial map ((N, C, H, W), (N, H, W, C) or tokens) "
                                   "exactly once per forward pass; pass the layer's dotted name explicitly")
        return last
    by_name = {c.name: c for c in layers.calls}
    all_names = [n for n in layers.modules if n]
    if override not in all_names:
        close = difflib.get_close_matches(override, all_names, n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise TargetLayerError(f"no module named {override!r} in the model.{hint} "
                               f"Usable layers (last ones): {layers.listing()}")
    call = by_name.get(override)
    if call is None:
        raise TargetLayerError(f"module {override!r} is not called in the forward pass. "
                               f"Usable layers: {layers.listing()}")
    if call.calls != 1:
        raise TargetLayerError(f"module {override!r} is called {call.calls} times per forward pass (a shared "
                               f"module); its hook would capture several tensors. Usable layers: {layers.listing()}")
    try:
        return replace(call, layout=layers.layout(call))
    except LayoutError as exc:
        raise TargetLayerError(f"module {override!r} outputs shape {call.shape}, not a spatial map whose layout "
                               f"can be determined: {exc}. Usable layers: {layers.listing()}") from None


def get_module(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]
