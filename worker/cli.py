"""Command line: ``python -m worker {explain,run,export,drift} ...``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from worker.settings import Settings, load_settings

if TYPE_CHECKING:
    from worker.engine import CamEngine

log = logging.getLogger("worker")


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="model spec: efficientnet_lite0 | torchvision:<arch> | python:<module>:<factory>")
    g.add_argument("--weights", type=Path, help="state dict (.pt/.pth, weights_only) or .safetensors")
    g.add_argument("--classes", type=Path, help="class names: one per line, or a JSON list")
    g.add_argument("--num-classes", type=int, dest="num_classes")
    g.add_argument("--trust-pickle", action="store_const", const=True, dest="trust_pickle",
                   help="allow a fully pickled model file (runs code from the file)")
    g.add_argument("--method", help="cam, gradcam, gradcam++, xgradcam, layercam, hirescam, eigencam, scorecam, random")
    g.add_argument("--target-layer", dest="target_layer", help="dotted module name (default: auto-detected)")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--preprocess", choices=["resize", "letterbox", "center_crop"])
    g.add_argument("--batch-size", type=int, dest="batch_size")
    g.add_argument("--config", type=Path, help="camwatch.toml (default: ./camwatch.toml when present)")


MODEL_KEYS = ("model", "weights", "classes", "num_classes", "trust_pickle", "method", "target_layer", "device",
              "preprocess", "batch_size")


def settings_from(args: argparse.Namespace, keys: Sequence[str]) -> Settings:
    return load_settings(getattr(args, "config", None), **{k: getattr(args, k, None) for k in keys})


def build_engine(settings: Settings) -> CamEngine:  # imported lazily: torch is heavy
    from worker.engine import CamEngine
    from worker.models import load_model

    loaded = load_model(settings.model, weights=settings.weights, num_classes=settings.num_classes,
                        classes=settings.classes, trust_pickle=settings.trust_pickle,
                        preprocessing={"mode": settings.preprocess} if settings.preprocess else None)
    return CamEngine(loaded, settings.method, target_layer=settings.target_layer, device=settings.device,
                     topk=settings.topk)


def cmd_explain(args: argparse.Namespace) -> int:
    from worker.explain import explain_files
    from worker.regions import parse_box

    settings = settings_from(args, MODEL_KEYS)
    boxes = [parse_box(b) for b in args.box or []]
    engine = build_engine(settings)
    failures = explain_files([Path(p) for p in args.images], engine, args.out, target=args.target, boxes=boxes,
                             batch_size=settings.batch_size)
    if failures:
        print(f"{failures} of {len(args.images)} images failed", file=sys.stderr)  # noqa: T201
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description="camwatch worker")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("explain", help="explain images: overlay PNG + JSON with predictions and statistics")
    p.add_argument("images", nargs="+")
    p.add_argument("--target", type=int, help="class index to explain (default: the top-1 class)")
    p.add_argument("--box", action="append", help="object box x0,y0,x1,y1 in original pixels (repeatable)")
    p.add_argument("--out", type=Path, default=Path("out"))
    add_model_args(p)
    p.set_defaults(func=cmd_explain)

    from worker import service_cli

    service_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError) as exc:
        # Configuration and input errors: one readable line, no traceback.
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
