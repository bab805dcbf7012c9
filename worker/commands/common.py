"""What the commands share: the model options and turning parsed arguments into settings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from camwatch.conventions import PREPROCESS_MODES
from camwatch.heads import HEAD_KINDS, head_help
from camwatch.methods import method_help
from camwatch.settings import Settings, load_settings

#: Settings fields set by the model options (:func:`add_model_args`).
MODEL_KEYS = ("model", "weights", "classes", "num_classes", "trust_pickle", "method", "target_layer", "device",
              "preprocess", "batch_size", "head", "head_threshold", "channels_last", "compile", "precision")


def add_model_args(p: argparse.ArgumentParser, *, repeatable: bool = False) -> None:
    g = p.add_argument_group("model")
    spec_help = ("model spec: efficientnet_lite0 | torchvision:<arch> | timm:<name> | "
                 "hf:<directory saved with save_pretrained> | python:<module>:<factory>")
    if repeatable:
        g.add_argument("--model", action="append", help=f"{spec_help}; repeat it for shadow mode: the first is the "
                                                         "primary (and takes --weights/--classes/--num-classes), "
                                                         "the others are shadow models sharing the other options")
    else:
        g.add_argument("--model", help=spec_help)
    g.add_argument("--weights", type=Path, help="state dict (.pt/.pth, weights_only) or .safetensors "
                                                "(torchvision: and timm: specs)")
    g.add_argument("--classes", type=Path, help="class names: one per line, or a JSON list")
    g.add_argument("--num-classes", type=int, dest="num_classes")
    g.add_argument("--trust-pickle", action="store_const", const=True, dest="trust_pickle",
                   help="allow a fully pickled model file (runs code from the file)")
    g.add_argument("--method", help=f"CAM method: {method_help()}")
    g.add_argument("--target-layer", dest="target_layer", help="dotted module name (default: auto-detected)")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--preprocess", choices=PREPROCESS_MODES)
    g.add_argument("--batch-size", type=int, dest="batch_size")
    g.add_argument("--head", choices=HEAD_KINDS, help=f"classifier head ({head_help()}); default softmax, binary "
                                                      "for a single-logit model")
    g.add_argument("--head-threshold", type=float, dest="head_threshold",
                   help="multi-label (sigmoid) threshold: a class is a predicted label when p >= this (0.5)")
    o = p.add_argument_group("optimised inference (the trunk up to the target layer; the head stays eager fp32)")
    o.add_argument("--channels-last", action="store_const", const=True, dest="channels_last",
                   help="model and inputs in channels-last (NHWC) memory format")
    o.add_argument("--compile", action="store_const", const=True, dest="compile",
                   help="torch.compile the trunk (the first batch of each shape pays the compilation)")
    o.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                   help="autocast the trunk to bf16/fp16 on CUDA (default fp32)")
    o.add_argument("--threads", type=int, dest="threads",
                   help="torch intra-op threads (default: [runtime] threads, else the available cores)")
    g.add_argument("--config", type=Path, help="camwatch.toml (default: ./camwatch.toml when present)")


def shadow_overrides(args: argparse.Namespace) -> dict[str, object]:
    """Settings overrides of a repeatable ``--model``: the one model (no shadow models), or, given twice or
    more, the ``models`` list of shadow mode (the first primary, with the command line's weights and classes)."""
    specs: list[str] = list(args.model or [])
    if not specs:
        return {"model": None}
    if len(specs) == 1:  # the command line's one model wins over a [[models]] list of the settings
        return {"model": specs[0], "models": []}
    primary = {"model": specs[0], "primary": True, "weights": args.weights, "classes": args.classes,
               "num_classes": args.num_classes}
    return {"model": specs[0], "models": [primary, *({"model": spec} for spec in specs[1:])]}


def settings_from(args: argparse.Namespace, keys: Sequence[str]) -> Settings:
    """Settings with the given command-line options (``None`` = not given) on top of env, TOML, defaults;
    a repeated ``--model`` is shadow mode (:func:`shadow_overrides`)."""
    values = {k: getattr(args, k, None) for k in keys}
    if isinstance(values.get("model"), list):
        values.update(shadow_overrides(args))
    return load_settings(getattr(args, "config", None), **values, runtime=runtime_override(args))


def runtime_override(args: argparse.Namespace) -> dict | None:
    """``--threads`` as a ``[runtime]`` override (merged with the environment's and the file's table)."""
    threads = getattr(args, "threads", None)
    return {"threads": threads} if threads is not None else None
