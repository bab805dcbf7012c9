"""End-to-end worker throughput against the raw forward pass, measured in one run.

    .venv/bin/python benchmarks/worker_throughput.py [--images 500] [--batch-size 16] [--method gradcam]

Makes a folder of 640x480 JPEGs (crops of real photos with jitter, distinct bytes), times
``worker run --once`` in-process — scan, hash, register, decode, CAM, statistics, flags, commits — from
the first scan to the last commit (model loading and migrations are reported apart), then times the raw
forward pass of the same model at the same batch size under ``torch.inference_mode`` on preprocessed
tensors, and prints the ratio. RSS is sampled during the run to show whether memory stays flat
(use ``--images 5000`` for the long run). The allocator settings in force are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.service import Worker
from worker.settings import load_settings


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_folder(folder: Path, n: int, seed: int = 0) -> None:
    from skimage import data

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    rng = np.random.default_rng(seed)
    for i in range(n):
        src = Image.fromarray(photos[i % len(photos)])
        scale = rng.uniform(1.2, 1.8)
        big = src.resize((int(640 * scale), int(480 * scale)))
        x0, y0 = int(rng.integers(0, big.width - 640)), int(rng.integers(0, big.height - 480))
        img = big.crop((x0, y0, x0 + 640, y0 + 480))
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-4, 5, (480, 640, 3))
        sub = folder / f"cam{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(sub / f"f{i:05d}.jpg", quality=88)


def raw_forward(worker: Worker, batch: int, seconds: float = 5.0) -> float:
    loaded = worker.cam.loaded
    x = torch.randn(batch, 3, *loaded.preprocessing.size)
    model = loaded.module
    with torch.inference_mode():
        model(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            model(x)
            n += batch
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    alloc = {k: os.environ.get(k, "(unset)") for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, allocator {alloc}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "src"
        t0 = time.perf_counter()
        make_folder(folder, args.images)
        print(f"made {args.images} JPEGs 640x480 in {time.perf_counter() - t0:.1f} s")
        settings = load_settings(db=f"sqlite:///{tmp}/bench.db", source=[folder], model=args.model,
                                 method=args.method, batch_size=args.batch_size, stable_seconds=0.05,
                                 poll_seconds=0.01, use_events=False)
        t0 = time.perf_counter()
        worker = Worker(settings)
        print(f"startup (migrations, model load): {time.perf_counter() - t0:.1f} s")
        samples: list[tuple[int, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                samples.append((worker.processed, rss_mb()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        worker.work(burst=True)
        elapsed = time.perf_counter() - t0
        done.set()
        sampler.join()
        e2e = worker.processed / elapsed
        raw = raw_forward(worker, args.batch_size)
        print(f"worker run --once: {worker.processed} images in {elapsed:.1f} s = {e2e:.1f} img/s "
              f"(errors {worker.errors})")
        print(f"raw forward ({args.model}, batch {args.batch_size}, inference_mode): {raw:.1f} img/s")
        print(f"ratio end-to-end / raw forward: {e2e / raw:.2f}")
        if samples:
            marks = [samples[int(f * (len(samples) - 1))] for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
            print("RSS during the run (images done -> MB): "
                  + ", ".join(f"{n} -> {mb:.0f}" for n, mb in marks))
        db_size = sum(p.stat().st_size for p in Path(tmp).glob("bench.db*"))
        print(f"database: {db_size / 1024:.0f} KiB for {args.images} images "
              f"({db_size / max(args.images, 1):.0f} bytes/image incl. thumbnails of flagged images)")


if __name__ == "__main__":
    main()
