"""Target-layer detection: which module's output to explain.

Rule: run one example forward pass with a hook on every module and take the *last module to finish*
whose output is a 4-D tensor with more than one spatial cell (``N, C, H, W`` with ``H*W > 1``) and that
is called exactly once per forward pass. Parents finish after their children, so a stage container
(``layer4``, ``features``) wins over its last block; global pooling (``H*W == 1``) and everything after it
is excluded. Modules called more than once (an activation object shared between stem and head, as in
the lukemelas EfficientNet code) are never chosen: a hook there would capture several tensors.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn


class TargetLayerError(ValueError):
    """The target layer cannot be used; the message lists candidates."""


@dataclass(frozen=True)
class ModuleCall:
    name: str
    calls: int
    shape: tuple[int, ...] | None  # output shape of the last call, None if not a tensor
    order: int  # completion order of the last call

    @property
    def is_spatial(self) -> bool:
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


def candidate_layers(calls: list[ModuleCall]) -> list[ModuleCall]:
    return [c for c in calls if c.is_spatial and c.calls == 1]


def find_target_layer(model: nn.Module, example: torch.Tensor, override: str | None = None) -> ModuleCall:
    """The layer to explain: ``override`` (dotted name) if given and usable, else auto-detected."""
    calls = trace_modules(model, example)
    candidates = candidate_layers(calls)
    listing = ", ".join(c.name for c in candidates[-8:]) or "none"
    if override is None:
        if not candidates:
            raise TargetLayerError("no module produces a spatial 4-D output (N, C, H, W) exactly once per "
                                   "forward pass; pass the layer's dotted name explicitly")
        return candidates[-1]
    by_name = {c.name: c for c in calls}
    all_names = [n for n, _ in model.named_modules() if n]
    if override not in all_names:
        close = difflib.get_close_matches(override, all_names, n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise TargetLayerError(f"no module named {override!r} in the model.{hint} "
                               f"Usable layers (last ones): {listing}")
    call = by_name.get(override)
    if call is None:
        raise TargetLayerError(f"module {override!r} is not called in the forward pass. Usable layers: {listing}")
    if call.calls != 1:
        raise TargetLayerError(f"module {override!r} is called {call.calls} times per forward pass (a shared "
                               f"module); its hook would capture several tensors. Usable layers: {listing}")
    if not call.is_spatial:
        raise TargetLayerError(f"module {override!r} outputs shape {call.shape}, not a spatial (N, C, H, W) map. "
                               f"Usable layers: {listing}")
    return call


def get_module(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]
