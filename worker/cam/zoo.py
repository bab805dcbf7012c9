"""Model zoos: ``timm:<name>`` and ``hf:<local directory>``, read offline.

- ``timm:<name>``: ``timm.create_model(name, pretrained=False)`` (no hub access), weights from ``--weights``
  (a ``.safetensors`` file or a state dict ``.pth``/``.pt`` read with ``weights_only=True``); the class count
  comes from ``--num-classes``, the classes file, or the state dict's classifier. Preprocessing from the
  model's ``pretrained_cfg`` (``timm.data.resolve_model_data_config``): input size, mean, std,
  interpolation, and ``crop_pct`` as the ``center_crop`` fraction.
- ``hf:<directory>``: a Hugging Face image-classification model saved with ``save_pretrained`` — its
  ``config.json``, ``model.safetensors`` (pickled ``.bin`` weights are refused) and the image processor's
  ``preprocessor_config.json`` — loaded with ``local_files_only=True`` and no remote code. Class names come
  from ``id2label``; ``problem_type = "multi_label_classification"`` makes the sigmoid head the default. A
  forward hook on the model returns ``ModelOutput.logits``, so the module keeps its own layer names
  (``vit.encoder.layer.11.layernorm_before``) for ``--target-layer``. Preprocessing from the processor:
  size (``crop_size`` when it centre-crops), ``image_mean``/``image_std`` (with ``rescale_factor``), and
  ``resample``.

The preprocessing *mode* stays camwatch's (default ``resize``: the whole frame is seen and the heatmap maps
back exactly); ``--preprocess center_crop`` reproduces the zoo's evaluation crop.
"""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worker.cam.loaded import (
    LoadedModel,
    ModelLoadError,
    load_into,
    read_state_dict,
    resolve_classes,
    sha256_of,
)
from worker.cam.preprocess import INTERPOLATIONS, Preprocessing

log = logging.getLogger(__name__)

#: PIL resampling codes as Hugging Face image processors store them.
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


# ---------------------------------------------------------------------------------------------------- timm


def _timm_classifier(model: nn.Module) -> str | None:
    cfg: dict[str, Any] = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier")
    if isinstance(name, str):
        try:
            module = model.get_submodule(name)
        except AttributeError:
            return None
        return name if isinstance(module, nn.Linear) else None
    return None


def timm_preprocessing(model: nn.Module) -> Preprocessing:
    """Size, mean, std, interpolation and crop fraction from a timm model's ``pretrained_cfg``."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    _, h, w = cfg["input_size"]
    built = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if isinstance(built, tuple | list) and len(built) == 2:  # the size the model was built for (img_size=...)
        h, w = built
    interpolation: Any = cfg.get("interpolation") or "bilinear"
    if interpolation not in INTERPOLATIONS:
        log.warning("timm interpolation %r is not supported; using bicubic", interpolation)
        interpolation = "bicubic"
    return Preprocessing(size=(int(h), int(w)), mean=tuple(float(v) for v in cfg["mean"]),  # type: ignore[arg-type]
                         std=tuple(float(v) for v in cfg["std"]),  # type: ignore[arg-type]
                         crop_fraction=float(cfg.get("crop_pct") or 0.875), interpolation=interpolation)


def load_timm(name: str, weights: Path | None, num_classes: int | None, class_names: list[str] | None,
              head: str | None, trust_pickle: bool) -> LoadedModel:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"unknown timm model {name!r}{hint}")
    state = read_state_dict(weights, trust_pickle=trust_pickle) if weights is not None else None
    if isinstance(state, nn.Module):
        raise ModelLoadError(f"{weights}: a pickled module; timm:{name} needs a state dict (.safetensors or .pth)")
    cfg = timm.models.get_pretrained_cfg(name)
    classifier = cfg.classifier if cfg is not None and isinstance(cfg.classifier, str) else None
    file_classes = None
    if state is not None and classifier is not None and f"{classifier}.weight" in state:
        file_classes = int(state[f"{classifier}.weight"].shape[0])
    wanted = num_classes or (1 if class_names is not None and file_classes == 1 else
                             len(class_names) if class_names is not None else None)
    if file_classes is not None and wanted is not None and wanted != file_classes:
        raise ModelLoadError(f"{weights}: the classifier '{classifier}' has {file_classes} outputs but {wanted} "
                             "classes were given (--num-classes / --classes); they must match")
    n_out = wanted or file_classes or (cfg.num_classes if cfg is not None else None) or 1000
    model = timm.create_model(name, pretrained=False, num_classes=n_out)
    if state is not None:
        assert weights is not None
        load_into(model, state, weights)
    else:
        log.warning("timm:%s without --weights: random weights (useful only for tests)", name)
    key, names = resolve_classes(class_names, int(n_out), f"timm:{name}", head)
    return LoadedModel(module=model.eval(), class_names=names, preprocessing=timm_preprocessing(model),
                       spec=f"timm:{name}", weights_sha256=sha256_of(weights) if weights else None,
                       classifier=_timm_classifier(model), head=key)


# ------------------------------------------------------------------------------------------ Hugging Face


def _logits_only(_module: nn.Module, _inputs: object, output: Any) -> torch.Tensor:
    """Forward hook: the ``logits`` of a Hugging Face ``ModelOutput`` (or the first element of a tuple)."""
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, tuple) and output:
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise ModelLoadError(f"the Hugging Face model returned {type(output).__name__} without logits")
    return logits


def _pair(value: Any, what: str, source: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return (int(value["height"]), int(value["width"]))
        if "shortest_edge" in value:
            return (int(value["shortest_edge"]), int(value["shortest_edge"]))
    raise ModelLoadError(f"{source}: {what} {value!r} is not a size camwatch understands (height/width, "
                         "shortest_edge or an integer)")


def hf_preprocessing(doc: dict[str, Any], source: str) -> Preprocessing:
    """A Hugging Face image processor's configuration as camwatch preprocessing."""
    size = _pair(doc.get("size"), "size", source)
    crop = _pair(doc.get("crop_size"), "crop_size", source) if doc.get("do_center_crop") else None
    if size is None and crop is None:
        raise ModelLoadError(f"{source}: the image processor configuration gives no input size")
    fraction = doc.get("crop_pct")
    if crop is not None and size is not None and fraction is None:
        fraction = min(1.0, min(crop) / max(1, min(size)))
    scale = float(doc.get("rescale_factor", 1 / 255)) if doc.get("do_rescale", True) else 1.0
    if doc.get("do_normalize", True):
        mean = [float(v) for v in doc.get("image_mean", (0.5, 0.5, 0.5))]
        std = [float(v) for v in doc.get("image_std", (0.5, 0.5, 0.5))]
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    # the processor computes (x·scale − m)/s = (x/255 − m/(255·scale)) / (s/(255·scale))
    k = 255.0 * scale
    resample = doc.get("resample", 2)
    interpolation: Any = _PIL_RESAMPLE.get(resample, resample) if isinstance(resample, int) else str(resample)
    if interpolation not in INTERPOLATIONS:
        raise ModelLoadError(f"{source}: resample {resample!r} is not supported ({', '.join(INTERPOLATIONS)})")
    return Preprocessing(size=crop or size, mean=tuple(m / k for m in mean),  # type: ignore[arg-type]
                         std=tuple(s / k for s in std), crop_fraction=float(fraction or 0.875),  # type: ignore[arg-type]
                         interpolation=interpolation)


def _hf_weights_sha256(directory: Path) -> str:
    files = sorted(directory.glob("*.safetensors"))
    if len(files) == 1:
        return sha256_of(files[0])
    import hashlib

    return hashlib.sha256("".join(sha256_of(f) for f in files).encode()).hexdigest()


def load_hf(location: str, class_names: list[str] | None, head: str | None) -> LoadedModel:
    directory = Path(location).expanduser()
    source = f"hf:{location}"
    if not directory.is_dir():
        raise ModelLoadError(f"{source}: not a directory (hf: takes a folder saved with save_pretrained; "
                             "models are never downloaded)")
    if not (directory / "config.json").is_file():
        raise ModelLoadError(f"{directory}: no config.json (save the model with save_pretrained)")
    if not any((directory / f).is_file() for f in _HF_WEIGHTS):
        raise ModelLoadError(f"{directory}: no model.safetensors; camwatch reads Hugging Face weights only as "
                             "safetensors (pickled pytorch_model.bin files can run code); re-save with "
                             "save_pretrained(safe_serialization=True)")
    processor = directory / "preprocessor_config.json"
    if not processor.is_file():
        raise ModelLoadError(f"{directory}: no preprocessor_config.json (save the image processor too: "
                             "AutoImageProcessor.save_pretrained)")
    try:
        doc = json.loads(processor.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{processor}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ModelLoadError(f"{processor}: expected a JSON object")
    preprocessing = hf_preprocessing(doc, str(processor))
    from transformers import AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a worker's log is no terminal
    try:
        model, info = AutoModelForImageClassification.from_pretrained(
            directory, local_files_only=True, use_safetensors=True, trust_remote_code=False,
            output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{directory}: not a loadable image-classification model ({exc})") from exc
    missing = [k for k in info.get("missing_keys", []) if k]
    if missing:
        raise ModelLoadError(f"{directory}: the weights lack {len(missing)} tensors of the architecture "
                             f"(e.g. {', '.join(sorted(missing)[:5])}); they would be random")
    config = model.config
    n_out = int(config.num_labels)
    labels = getattr(config, "id2label", None) or {}
    own = [str(labels.get(i, labels.get(str(i), f"LABEL_{i}"))) for i in range(n_out)]
    default = None if own == [f"LABEL_{i}" for i in range(n_out)] else own
    wanted_head = head or ("sigmoid" if getattr(config, "problem_type", None) == "multi_label_classification"
                           and n_out > 1 else None)
    key, names = resolve_classes(class_names, n_out, source, wanted_head, default=default)
    model.register_forward_hook(_logits_only)
    return LoadedModel(module=model.eval(), class_names=names, preprocessing=preprocessing, spec=source,
                       weights_sha256=_hf_weights_sha256(directory), head=key)
