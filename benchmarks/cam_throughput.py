"""CAM throughput: images/s of our methods and the peers' next to the raw forward pass, in one run.

    .venv/bin/python benchmarks/cam_throughput.py [--models lite0 resnet50] [--batches 1 8 32] [--seconds 3]

The floor is the raw forward pass under ``torch.inference_mode``. Each method is timed in rounds that
alternate with the raw forward pass on the same batch, so the printed ratio (method / raw) is robust to
the machine's load drifting during the run. Inputs are preprocessed tensors (decode and resize are
the worker's cost, measured in benchmarks/worker_throughput.py). Peers: pytorch-grad-cam (``grad-cam``)
and torchcam, at the same target layer, explaining the top-1 class. The process applies the worker's
runtime settings (allocator, threads: docs/operations.md) and prints them, because they change the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camwatch.settings import RuntimeSettings
from worker.cam.accel import Acceleration
from worker.cam.engine import CamEngine
from worker.cam.models import LoadedModel, load_model
from worker.cam.preprocess import Preprocessing
from worker.runtime import configure_runtime

OURS = ["cam", "gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam"]


def build(name: str) -> LoadedModel:
    if name == "lite0":
        return load_model("efficientnet_lite0")
    import torchvision

    module = torchvision.models.resnet50(weights=None).eval()
    return LoadedModel(module=module, class_names=[str(i) for i in range(1000)], preprocessing=Preprocessing(),
                       spec="torchvision:resnet50", classifier="fc")


def peers(loaded: LoadedModel, layer_name: str) -> dict[str, Callable[[torch.Tensor], object]]:
    import pytorch_grad_cam
    import torchcam.methods as tc

    model = loaded.module
    layer = dict(model.named_modules())[layer_name]
    out: dict[str, Callable[[torch.Tensor], object]] = {}
    for label, cls in [("grad-cam GradCAM", "GradCAM"), ("grad-cam GradCAM++", "GradCAMPlusPlus"),
                       ("grad-cam EigenCAM", "EigenCAM")]:
        cam = getattr(pytorch_grad_cam, cls)(model=model, target_layers=[layer])
        out[label] = lambda x, cam=cam: cam(input_tensor=x, targets=None)

    def torchcam_call(extractor_cls: type, needs_grad: bool, **kw: object) -> Callable[[torch.Tensor], object]:
        extractor = extractor_cls(model, target_layer=layer_name, **kw)

        def call(x: torch.Tensor) -> object:
            with torch.set_grad_enabled(needs_grad):
                scores = model(x)
                return extractor(class_idx=scores.argmax(1).tolist(), scores=scores)
        return call

    out["torchcam CAM"] = torchcam_call(tc.CAM, False, fc_layer=loaded.classifier)
    out["torchcam GradCAM"] = torchcam_call(tc.GradCAM, True)
    out["torchcam GradCAMpp"] = torchcam_call(tc.GradCAMpp, True)
    return out


def paired(raw: Callable[[], object], fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Alternate raw and fn; return median seconds per call of each."""
    raw(), fn()  # warm-up
    t_raw: list[float] = []
    t_fn: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(t_fn) < 3:
        for f, acc in ((raw, t_raw), (fn, t_fn)):
            t0 = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t0)
    return statistics.median(t_raw), statistics.median(t_fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lite0", "resnet50"], choices=["lite0", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--methods", nargs="+", default=OURS)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--accel", action="store_true",
                        help="also Grad-CAM with --channels-last, --compile and both (each on its own model copy; "
                             "the raw floor stays the eager model)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per method and batch")
    args = parser.parse_args()
    runtime = configure_runtime(RuntimeSettings()).describe()  # what the worker's commands apply
    alloc = {k: os.environ.get(k, "(unset)") for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, allocator variables {alloc}; {runtime}")
    for name in args.models:
        loaded = build(name)
        engines = {m: CamEngine(loaded, m, device="cpu") for m in args.methods}
        layer = next(iter(engines.values())).target_layer
        rivals = {} if args.no_peers else peers(loaded, layer)
        accelerated = {} if not args.accel else {
            label: CamEngine(build(name), "gradcam", device="cpu", acceleration=options)
            for label, options in (("channels-last", Acceleration(channels_last=True)),
                                   ("compiled", Acceleration(compile=True)),
                                   ("compiled+cl", Acceleration(compile=True, channels_last=True)))}
        print(f"\n== {loaded.spec} (layer {layer})")
        print(f"{'method':24s} {'batch':>5s} {'raw img/s':>10s} {'img/s':>8s} {'ratio':>6s}")
        for batch in args.batches:
            x = torch.randn(batch, 3, *loaded.preprocessing.size)

            def raw(x: torch.Tensor = x, model: torch.nn.Module = loaded.module) -> object:
                with torch.inference_mode():
                    return model(x)

            calls: dict[str, Callable[[], object]] = {f"camwatch {m}": (lambda e=e, x=x: e.run(x))
                                                      for m, e in engines.items()}
            calls.update({k: (lambda f=f, x=x: f(x)) for k, f in rivals.items()})
            calls.update({f"gradcam {k}": (lambda e=e, x=x: e.run(x)) for k, e in accelerated.items()})
            for label, fn in calls.items():
                t_raw, t_fn = paired(raw, fn, args.seconds)
                print(f"{label:24s} {batch:5d} {batch / t_raw:10.1f} {batch / t_fn:8.1f} {t_raw / t_fn:6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
