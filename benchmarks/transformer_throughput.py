"""Grad-CAM throughput on vision transformers next to the raw forward pass and the peers, in one run.

    .venv/bin/python benchmarks/transformer_throughput.py [--models vit_b_16 swin_t] [--batches 8 32] [--rounds 3]

Models: torchvision ``vit_b_16`` and ``swin_t`` (``weights=None``, seeded), explained at camwatch's default
layer (the last block's first norm for ViT, second norm for Swin), top-1 class. The floor is the raw forward
pass under ``torch.inference_mode``; the goal is ≥ 0.9× of it, since camwatch differentiates only the layers
after the target layer. Each method is timed in rounds alternating with the raw forward pass on the same
batch (the printed ratio = median raw time / median method time), so load from other processes drifting
during the run affects both alike; the load averages at the start and end of each model are printed.

Peers at the same layer and target, each given camwatch's layout conversion as its ``reshape_transform``
(tokens without the class token to the 14×14 grid; Swin permuted) and each on its own copy of the model:
pytorch-grad-cam ``GradCAM`` and torchcam ``GradCAM``. Inputs are preprocessed tensors.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camwatch.settings import RuntimeSettings
from worker.cam.engine import CamEngine
from worker.cam.loaded import LoadedModel
from worker.cam.preprocess import Preprocessing
from worker.runtime import configure_runtime

MODELS = ("vit_b_16", "swin_t")


def build(arch: str) -> LoadedModel:
    import torchvision

    torch.manual_seed(0)
    module = torchvision.models.get_model(arch, weights=None).eval()
    head = module.heads.head if arch.startswith("vit") else module.head
    nn.init.normal_(head.weight, std=0.02)  # torchvision zero-initialises the ViT head
    return LoadedModel(module=module, class_names=[str(i) for i in range(1000)], preprocessing=Preprocessing(),
                       spec=f"torchvision:{arch}")


def peers(loaded: LoadedModel, engine: CamEngine) -> dict[str, Callable[[torch.Tensor], object]]:
    """The peers, each on its own copy of the model: their hooks stay registered on the model they are given
    (pytorch-grad-cam copies every activation it sees to the CPU), which must not slow the raw pass or ours."""
    import torchcam.methods as tc
    from pytorch_grad_cam import GradCAM

    name, layout = engine.target_layer, engine.layout
    pgc_model, tc_model = copy.deepcopy(loaded.module), copy.deepcopy(loaded.module)
    grad_cam = GradCAM(model=pgc_model, target_layers=[pgc_model.get_submodule(name)],
                       reshape_transform=layout.to_nchw)
    extractor = tc.GradCAM(tc_model, target_layer=name, reshape_transform=layout.to_nchw)

    def torchcam_call(x: torch.Tensor) -> object:
        with torch.enable_grad():
            scores = tc_model(x)
            return extractor(class_idx=scores.argmax(1).tolist(), scores=scores)

    return {"pytorch-grad-cam GradCAM": lambda x: grad_cam(input_tensor=x, targets=None),
            "torchcam GradCAM": torchcam_call}


def paired(raw: Callable[[], object], fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Alternate raw and fn ``rounds`` times after one warm-up each; median seconds per call of each."""
    raw(), fn()
    t_raw: list[float] = []
    t_fn: list[float] = []
    for _ in range(rounds):
        for f, acc in ((raw, t_raw), (fn, t_fn)):
            t0 = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t0)
    return statistics.median(t_raw), statistics.median(t_fn)


def load() -> str:
    return "load averages " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per method and batch")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    runtime = configure_runtime(RuntimeSettings()).describe()  # what the worker's commands apply
    alloc = {k: os.environ.get(k, "(unset)") for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, "
          f"{os.cpu_count()} CPUs, allocator variables {alloc}; {runtime}")
    for arch in args.models:
        loaded = build(arch)
        engine = CamEngine(loaded, "gradcam", device=args.device)
        rivals = {} if args.no_peers else peers(loaded, engine)
        print(f"\n== {loaded.spec}: layer {engine.target_layer} ({engine.layout.describe()}); {load()}")
        print(f"{'method':26s} {'batch':>5s} {'raw img/s':>10s} {'img/s':>8s} {'ratio':>6s}")
        for batch in args.batches:
            x = torch.randn(batch, 3, *loaded.preprocessing.size, device=engine.device)

            def raw(x: torch.Tensor = x, model: nn.Module = loaded.module) -> object:
                with torch.inference_mode():
                    return model(x)

            calls: dict[str, Callable[[], object]] = {"camwatch gradcam": lambda x=x, e=engine: e.run(x)}
            calls.update({k: (lambda f=f, x=x: f(x)) for k, f in rivals.items()})
            for label, fn in calls.items():
                t_raw, t_fn = paired(raw, fn, args.rounds)
                print(f"{label:26s} {batch:5d} {batch / t_raw:10.2f} {batch / t_fn:8.2f} {t_raw / t_fn:6.2f}",
                      flush=True)
        print(f"-- {load()}")


if __name__ == "__main__":
    main()
