"""What every model loader shares: the loaded model, reading weights files safely, and class names.

Weights files are read with ``torch.load(weights_only=True)`` or safetensors; full pickled modules are
refused unless ``trust_pickle`` is set (unpickling runs arbitrary code).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from camwatch.heads import DEFAULT_HEAD_THRESHOLD
from worker.cam.heads import HeadError, binary_class_names, resolve_head
from worker.cam.preprocess import Preprocessing

log = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the file and the reason."""


@dataclass
class LoadedModel:
    """A model ready for the CAM engine.

    ``class_names`` are the classes the head reports: one per logit, or two (negative, positive) for a
    single-logit binary model (``head == "binary"``).
    """

    module: nn.Module
    class_names: list[str]
    preprocessing: Preprocessing
    spec: str
    weights_sha256: str | None = None
    target_layer: str | None = None  # suggested layer, when the spec knows better than auto-detection
    classifier: str | None = None  # dotted name of the final Linear after global pooling, when known
    head: str = "softmax"  # a key of camwatch.heads.HEADS
    head_threshold: float = DEFAULT_HEAD_THRESHOLD  # multi-label threshold (sigmoid head)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_outputs(self) -> int:
        """Logits the module returns: one per class, or one for a binary head."""
        return 1 if self.head == "binary" else len(self.class_names)

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else f"class_{index}"


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names shipped inside torchvision (no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# State dicts


def read_state_dict(path: Path, *, trust_pickle: bool) -> Mapping[str, torch.Tensor] | nn.Module:
    if not path.is_file():
        raise ModelLoadError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            raise ModelLoadError(
                f"{path}: contains pickled Python objects (a full model or custom classes), not a plain "
                "state dict. Unpickling runs arbitrary code from the file, so camwatch refuses it. Save "
                "`model.state_dict()` (or use .safetensors) instead, or pass --trust-pickle if you trust "
                "the file's origin."
            ) from exc
        log.warning("loading %s with full unpickling (--trust-pickle)", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            if all(k.startswith("module.") for k in tensors):  # saved from DataParallel
                tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
            return tensors
    raise ModelLoadError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    shape_errors = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                    for k, v in state.items() if k in own and own[k].shape != v.shape]
    if shape_errors:
        raise ModelLoadError(f"{path}: tensor shapes do not match the architecture: "
                             + "; ".join(shape_errors[:5]) + (" ..." if len(shape_errors) > 5 else ""))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing keys (e.g. {', '.join(result.missing_keys[:5])})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected keys "
                         f"(e.g. {', '.join(result.unexpected_keys[:5])})")
        raise ModelLoadError(f"{path}: state dict does not fit the architecture: " + "; ".join(parts))


# ---------------------------------------------------------------------------------------------------
# Classes and heads


def read_class_names(path: Path) -> list[str]:
    """One class name per line, or a JSON list of names."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: classes file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ModelLoadError(f"{path}: expected a JSON list of class names")
        return names
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelLoadError(f"{path}: no class names in the file")
    return names


def final_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def resolve_classes(given: list[str] | None, n_out: int, source: str, head: str | None = None,
                    default: list[str] | None = None) -> tuple[str, list[str]]:
    """The head key and the class names of a model with ``n_out`` logits (``default``: the model's own)."""
    try:
        key = resolve_head(head, n_out, source)
        if key == "binary":
            return key, binary_class_names(given, source)
    except HeadError as exc:
        raise ModelLoadError(str(exc)) from None
    if given is not None:
        if len(given) != n_out:
            raise ModelLoadError(f"{source}: the model has {n_out} outputs but the classes file lists "
                                 f"{len(given)} names")
        return key, given
    if default is not None and len(default) == n_out:
        return key, default
    return key, imagenet_class_names() if n_out == 1000 else [f"class_{i}" for i in range(n_out)]
