"""End-to-end images/s from a Redis stream against the folder source, on the same images, in one run.

    .venv/bin/python benchmarks/queue_throughput.py [--images 500] [--rounds 3] [--batch-size 16]
                                                    [--redis redis://127.0.0.1:6379/0]

Makes a folder of ``--images`` 640x480 JPEGs (the worker benchmark's images). Each round runs three
``worker run --once`` in-process, each into a fresh database, in an order that rotates from round to round
(so the VM's drifting speed does not favour one side):

- ``folder``: the folder source over the folder (scan, hash, register, claim, decode, ...);
- ``redis-inline``: a fresh stream holding one event per image with the JPEG inline (base64), published
  before the timing starts; the worker reads, validates, decodes base64, spools, registers, processes,
  acknowledges;
- ``redis-file``: the same with ``file://`` references to the folder's files (``allowed_roots``).

Timed from the worker's first loop iteration to its last commit (and, for the stream, its last XACK), as in
``benchmarks/worker_throughput.py``; the model is loaded once, database migrations are outside the timing.
Printed: each run's images/s, each round's ratios of the stream modes to the folder source of the same
round, their medians, and the overall ratios (all images over all time); goal >= 0.95. The same ratios in
images per CPU second of the process (all its threads) are printed too: on a machine shared with other
work, wall-clock rates swing with the neighbours' load (printed: the load average), CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_throughput import make_folder  # the same images as the worker benchmark

from camwatch.client import Publisher
from camwatch.settings import RuntimeSettings, Settings, load_settings
from worker.cam.engine import CamEngine
from worker.cam.factory import build_engine
from worker.runtime import configure_runtime
from worker.service.worker import Worker

MODES = ("folder", "redis-inline", "redis-file")


def publish(url: str, images: list[Path], *, inline: bool) -> None:
    with Publisher(url, maxlen=10 * len(images) + 1000) as pub:
        for path in images:
            pub.submit(path, inline=inline, tags={"camera": path.parent.name})


def run(settings: Settings, cam: CamEngine) -> tuple[int, float, float, int]:
    """Images done, wall seconds, CPU seconds of the process, errors."""
    worker = Worker(settings, engine=cam)
    worker.bootstrap()  # migrations of the fresh database and the broker connection, untimed
    t0, c0 = time.perf_counter(), time.process_time()
    worker.work(burst=True)
    return worker.processed, time.perf_counter() - t0, time.process_time() - c0, worker.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    runtime = configure_runtime(RuntimeSettings()).describe()  # what the worker's commands apply
    alloc = {k: os.environ.get(k, "(unset)") for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, allocator variables {alloc}; {runtime}")
    client = redis.Redis.from_url(args.redis)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "src"
        make_folder(folder, args.images)
        images = sorted(folder.rglob("*.jpg"))
        size = sum(p.stat().st_size for p in images) / len(images)
        print(f"{len(images)} JPEGs 640x480, {size / 1024:.0f} KiB on average; {args.rounds} rounds")

        def settings_for(name: str, source: str) -> Settings:
            return load_settings(db=f"sqlite:///{tmp}/{name}.db", source=[source], model=args.model,
                                 method=args.method, batch_size=args.batch_size, stable_seconds=0.05,
                                 poll_seconds=0.01, use_events=False, allowed_roots=[folder],
                                 queue={"spool_dir": f"{tmp}/spool-{name}"})

        cam = build_engine(settings_for("load", str(folder)))
        rates: dict[str, list[float]] = {m: [] for m in MODES}
        cpu_rates: dict[str, list[float]] = {m: [] for m in MODES}
        totals: dict[str, list[float]] = {m: [0.0, 0.0, 0.0] for m in MODES}
        streams: list[str] = []
        try:
            for r in range(args.rounds):
                for mode in MODES[r % len(MODES):] + MODES[:r % len(MODES)]:
                    name = f"{mode}-{r}"
                    if mode == "folder":
                        settings = settings_for(name, str(folder))
                    else:
                        stream = f"camwatch.bench.{uuid.uuid4().hex[:8]}"
                        streams.append(stream)
                        url = f"{args.redis}?stream={stream}&group=bench"
                        publish(url, images, inline=mode == "redis-inline")
                        settings = settings_for(name, url)
                    done, seconds, cpu, errors = run(settings, cam)
                    if done != len(images) or errors:
                        raise SystemExit(f"{name}: {done} images ok, {errors} errors (expected {len(images)} ok)")
                    rates[mode].append(done / seconds)
                    cpu_rates[mode].append(done / cpu)
                    for i, value in enumerate((done, seconds, cpu)):
                        totals[mode][i] += value
                    print(f"round {r + 1} {mode:>12}: {done} images in {seconds:.2f} s = {done / seconds:.1f} img/s "
                          f"({done / cpu:.1f} per CPU s; load average {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            for stream in streams:
                client.delete(stream, stream + ".dead")
    for label, series, column in (("images/s", rates, 1), ("images per CPU second", cpu_rates, 2)):
        folder_rate = totals["folder"][0] / totals["folder"][column]
        for mode in MODES[1:]:
            per_round = [q / f for q, f in zip(series[mode], series["folder"], strict=True)]
            overall = totals[mode][0] / totals[mode][column] / folder_rate
            print(f"{label}, {mode} / folder: rounds {', '.join(f'{x:.2f}' for x in per_round)}; median "
                  f"{statistics.median(per_round):.2f}; overall {overall:.2f} (goal >= 0.95)")
        print(f"{label}, folder source overall: {folder_rate:.1f}")


if __name__ == "__main__":
    main()
