"""The GPU path, end to end: JPEG bytes in, predictions and CAM statistics out, beside the raw forward pass
and the peers (pytorch-grad-cam, torchcam Grad-CAM), in one run.

    .venv/bin/python benchmarks/gpu_throughput.py [--device cuda] [--models lite0 resnet50]
        [--batches 32 64 128 256] [--images 512] [--seconds 5] [--decode device|procs] [--procs 8]
        [--precision fp32 bf16 fp16] [--channels-last] [--compile] [--no-peers]
    # smoke test on a CPU:
    .venv/bin/python benchmarks/gpu_throughput.py --device cpu --batches 2 --images 8 --seconds 1

End to end, per batch: JPEG bytes (640x480, distinct crops of real photos, held in memory as files in the
page cache would be) → decode (``--decode device``: ``torchvision.io.decode_jpeg(device="cuda")``, nvJPEG,
batched; on a CPU the same call decodes on the CPU; ``--decode procs``: ``--procs`` CPU processes decode
the next batch while this one runs, into pinned memory, copied with ``non_blocking``) → resize to the
model's input (antialiased bilinear, on the device) and normalisation → the CAM engine's one pass
(:meth:`worker.cam.engine.CamEngine.run_on_device`: forward, Grad-CAM on the head, maps) → statistics on
the device (:func:`worker.cam.device_stats.device_statistics`) and the top-5 → one copy back of an
``(N, 10)`` table and the top-5 (never the maps). ResNet-50 has ``weights=None`` (speed only).

Floors and peers on the same device and batch: the raw forward pass under ``torch.inference_mode`` on a
preprocessed batch already on the device (fp32 eager; with ``--precision`` also under the same autocast),
and pytorch-grad-cam ``GradCAM`` and torchcam ``GradCAM`` on that batch (their maps stay where their
libraries put them: pytorch-grad-cam returns numpy arrays, torchcam device tensors). Each configuration is
timed in rounds alternating with the raw pass; images/s are medians of rounds, the device synchronised.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cam_throughput import build  # the same two models (benchmarks/ is this script's folder)

from camwatch.settings import RuntimeSettings
from worker.cam.accel import Acceleration
from worker.cam.device_stats import device_statistics
from worker.cam.engine import CamEngine
from worker.cam.models import LoadedModel
from worker.cam.preprocess import Preprocessing
from worker.runtime import configure_runtime

WIDTH, HEIGHT = 640, 480


def make_jpegs(n: int, seed: int = 0) -> list[bytes]:
    from skimage import data

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        src = Image.fromarray(photos[i % len(photos)])
        scale = rng.uniform(1.2, 1.8)
        big = src.resize((int(WIDTH * scale), int(HEIGHT * scale)))
        x0, y0 = int(rng.integers(0, big.width - WIDTH)), int(rng.integers(0, big.height - HEIGHT))
        arr = np.asarray(big.crop((x0, y0, x0 + WIDTH, y0 + HEIGHT)), dtype=np.int16)
        arr = arr + rng.integers(-4, 5, arr.shape)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


def _decode_cpu(blobs: list[bytes]) -> np.ndarray:
    """A batch decoded in a worker process: (N, H, W, 3) uint8."""
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])


class Decoder:
    """Batches of decoded images as ``(N, 3, H, W)`` uint8 tensors on the device."""

    def __init__(self, mode: str, device: torch.device, procs: int) -> None:
        self.mode, self.device = mode, device
        self.pool = ProcessPoolExecutor(procs) if mode == "procs" else None

    def batches(self, blobs: list[bytes], batch: int, count: int) -> Iterator[torch.Tensor]:
        """``count`` batches cycling over ``blobs``."""
        chunks = [blobs[(k * batch + i) % len(blobs)] for k in range(count) for i in range(batch)]
        chunks_by_batch = [chunks[k * batch:(k + 1) * batch] for k in range(count)]
        if self.pool is None:
            import torchvision.io as tio

            for chunk in chunks_by_batch:
                data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in chunk]
                decoded = tio.decode_jpeg(data, device=self.device)
                yield torch.stack(decoded)
            return
        pending: Future = self.pool.submit(_decode_cpu, chunks_by_batch[0])
        for k in range(count):
            array = pending.result()
            if k + 1 < count:
                pending = self.pool.submit(_decode_cpu, chunks_by_batch[k + 1])  # overlaps this batch's work
            host = torch.from_numpy(array).permute(0, 3, 1, 2)
            if self.device.type == "cuda":
                host = host.contiguous().pin_memory()
            yield host.to(self.device, non_blocking=True)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def preprocess(pixels: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """uint8 (N, 3, H, W) on the device → the model's normalised input, resized (antialiased bilinear)."""
    x = F.interpolate(pixels.float(), size=pre.size, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(pre.mean, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(pre.std, device=x.device).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def end_to_end(engine: CamEngine, decoder: Decoder, blobs: list[bytes], batch: int, count: int) -> float:
    """Images/s over ``count`` batches: decode → preprocess → CAM → device statistics → copy back."""
    pre = engine.loaded.preprocessing
    sync(engine.device)
    t0 = time.perf_counter()
    for pixels in decoder.batches(blobs, batch, count):
        ((maps, scores, _tgt),) = engine.run_on_device(preprocess(pixels, pre))
        stats = device_statistics(maps, WIDTH, HEIGHT)
        top = torch.softmax(scores, dim=1).topk(5, dim=1)
        table = torch.cat([stats, top.values.to(stats.dtype), top.indices.to(stats.dtype)], dim=1)
        table.cpu()  # the one copy back (synchronises)
    return batch * count / (time.perf_counter() - t0)


def timed(fn: Callable[[], object], device: torch.device, images: int) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return images / (time.perf_counter() - t0)


def peers(loaded: LoadedModel, layer: str) -> dict[str, Callable[[torch.Tensor], object]]:
    import pytorch_grad_cam
    import torchcam.methods as tc

    model = loaded.module
    module = dict(model.named_modules())[layer]
    gradcam = pytorch_grad_cam.GradCAM(model=model, target_layers=[module])
    extractor = tc.GradCAM(model, target_layer=layer)

    def torchcam_call(x: torch.Tensor) -> object:
        with torch.enable_grad():
            scores = model(x)
            return extractor(class_idx=scores.argmax(1).tolist(), scores=scores)

    return {"pytorch-grad-cam GradCAM": lambda x: gradcam(input_tensor=x, targets=None),
            "torchcam GradCAM": torchcam_call}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["lite0", "resnet50"], choices=["lite0", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 64, 128, 256])
    parser.add_argument("--images", type=int, default=512, help="distinct JPEGs, cycled")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing budget per configuration")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decode", choices=["device", "procs"], default="device")
    parser.add_argument("--procs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true", dest="channels_last")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    report = configure_runtime(RuntimeSettings())
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"torch {torch.__version__}, device {name}; {report.describe()}; load {os.getloadavg()}")
    t0 = time.perf_counter()
    blobs = make_jpegs(args.images)
    print(f"{len(blobs)} JPEGs {WIDTH}x{HEIGHT} in {time.perf_counter() - t0:.1f} s; decode: {args.decode}")
    decoder = Decoder(args.decode, device, args.procs)
    print(f"{'model':10s} {'precision':9s} {'batch':>5s} {'raw img/s':>10s} {'e2e img/s':>10s} {'e2e/raw':>7s}  peers "
          "(img/s, ratio to raw)")
    try:
        for model_name in args.models:
            for precision in args.precision:
                loaded = build(model_name)
                engine = CamEngine(loaded, "gradcam", device=device, acceleration=Acceleration(
                    channels_last=args.channels_last, compile=args.compile, precision=precision))
                rivals = {} if args.no_peers else peers(build(model_name), engine.target_layer)
                raw_model = build(model_name).module.to(device).eval()
                for batch in args.batches:
                    x = torch.randn(batch, 3, *loaded.preprocessing.size, device=device)

                    def raw(x: torch.Tensor = x, model: torch.nn.Module = raw_model) -> object:
                        with torch.inference_mode():
                            return model(x)

                    count = max(1, args.images // batch)
                    peer_models = {k: (lambda f=f, x=x: f(x)) for k, f in rivals.items()}
                    end_to_end(engine, decoder, blobs, batch, 1)  # warm-up (and compilation)
                    raw()
                    for fn in peer_models.values():
                        fn()
                    rates: dict[str, list[float]] = {"raw": [], "e2e": [], **{k: [] for k in peer_models}}
                    deadline = time.perf_counter() + args.seconds
                    rounds = 0
                    while rounds < args.rounds or time.perf_counter() < deadline:
                        rates["raw"].append(timed(lambda raw=raw, count=count: [raw() for _ in range(count)],
                                                  device, batch * count))
                        rates["e2e"].append(end_to_end(engine, decoder, blobs, batch, count))
                        for k, fn in peer_models.items():
                            rates[k].append(timed(lambda fn=fn: fn(), device, batch))
                        rounds += 1
                    med = {k: statistics.median(v) for k, v in rates.items()}
                    peer_text = ", ".join(f"{k} {med[k]:.1f} ({med[k] / med['raw']:.2f})" for k in peer_models)
                    print(f"{model_name:10s} {precision:9s} {batch:5d} {med['raw']:10.1f} {med['e2e']:10.1f} "
                          f"{med['e2e'] / med['raw']:7.2f}  {peer_text}", flush=True)
    finally:
        decoder.close()
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
