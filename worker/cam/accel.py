"""Optional optimised inference for the CAM engine: channels-last, ``torch.compile`` of the trunk, and
reduced precision on CUDA with the head in fp32.

All three act on the *trunk*: the target layer and the modules that run entirely before it (on the path
from the root to the target layer, the earlier siblings of each module on the path, in the order of an
example forward pass). The head — everything after the target layer — stays eager and in fp32, because
gradient methods differentiate it (:mod:`worker.cam.engine`).

- **channels-last** (``channels_last``): the model's 4-d weights and the input batch in NHWC memory format,
  which oneDNN's and cuDNN's convolutions prefer (no reorders between layers).
- **compile** (``compile``): each trunk module's ``forward`` replaced by its ``torch.compile``d version.
  Only ``forward``, not the module call: the engine's forward hook on the target layer stays outside the
  compiled graph, so the hooked activations are the compiled trunk's output, taken as an autograd leaf.
  The first batch of each new shape pays the compilation (tens of seconds on a small CPU).
- **precision** (``precision = "bf16" | "fp16"``, CUDA only): each trunk module's ``forward`` runs under
  ``torch.autocast``; the engine converts the hooked activations to fp32, so the head, its gradients and
  the maps are computed in fp32.

Parity with the eager fp32 result (maps Pearson r > 0.999, same top-1) is tested in
tests/worker/cam/test_accel.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Acceleration:
    """What the engine applies (settings ``channels_last``, ``compile``, ``precision``)."""

    channels_last: bool = False
    compile: bool = False
    precision: str = "fp32"  # fp32 | bf16 | fp16 (the latter two on CUDA only)

    def describe(self) -> str:
        parts = [p for p, on in (("channels-last", self.channels_last), ("compiled trunk", self.compile)) if on]
        if self.precision != "fp32":
            parts.append(f"{self.precision} trunk, fp32 head")
        return ", ".join(parts) or "eager fp32"


def trunk_modules(model: nn.Module, target: str, example: torch.Tensor) -> list[str]:
    """Dotted names of the target layer and of the modules that run entirely before it: along the path
    root → target, each earlier sibling (by call order in one forward pass of ``example``) of each module
    on the path. A sibling also called after the target layer starts (a shared module) is left out."""
    path = target.split(".")
    on_path = {".".join(path[:i]) for i in range(len(path) + 1)}
    starts: dict[str, list[int]] = {}
    ends: dict[str, list[int]] = {}
    counter = [0]
    handles = []

    def stamp(book: dict[str, list[int]], name: str) -> Callable[..., None]:
        def hook(*_args: Any) -> None:
            counter[0] += 1
            book.setdefault(name, []).append(counter[0])
        return hook

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(stamp(starts, name)))
        handles.append(module.register_forward_hook(stamp(ends, name)))
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    target_start = starts[target][0]
    names = [target]
    for i in range(len(path)):
        parent = ".".join(path[:i])
        module = model.get_submodule(parent)
        for child, _ in module.named_children():
            name = f"{parent}.{child}" if parent else child
            if name in on_path or name not in ends:
                continue
            if max(ends[name]) < target_start and max(starts[name]) < target_start:
                names.append(name)
    return names


def _autocast_forward(forward: Callable[..., Any], device_type: str, dtype: torch.dtype) -> Callable[..., Any]:
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            return forward(*args, **kwargs)
    return run


def accelerate(model: nn.Module, target: str, example: torch.Tensor, device: torch.device,
               options: Acceleration) -> list[str]:
    """Apply ``options`` to ``model`` in place (see the module docstring); returns the trunk's module names
    (empty when nothing acts on the trunk)."""
    if options.precision not in PRECISIONS:
        raise ValueError(f"precision {options.precision!r}: choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[options.precision]
    if dtype is not None and device.type != "cuda":
        raise ValueError(f"precision {options.precision!r} needs a CUDA device (this engine runs on {device}); "
                         "use precision 'fp32' on a CPU")
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    if not options.compile and dtype is None:
        return []
    names = trunk_modules(model, target, example)
    for name in names:
        module = model.get_submodule(name)
        forward = module.forward
        if dtype is not None:
            forward = _autocast_forward(forward, device.type, dtype)
        if options.compile:
            forward = torch.compile(forward)
        module.forward = forward  # type: ignore[method-assign]
    log.info("optimised inference: %s on %d trunk module(s) up to '%s'", options.describe(), len(names), target)
    return names
