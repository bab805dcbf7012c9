"""End-to-end worker throughput against the raw forward pass, measured in one run, in paired rounds.

    .venv/bin/python benchmarks/worker_throughput.py [--images 500] [--rounds 5] [--batch-size 16]
                                                     [--method gradcam] [--raw-seconds 3]
                                                     [--mode inprocess|subprocess] [--compile] [--channels-last]

``--mode subprocess`` runs the README's command as users run it — ``python -m worker run --source DIR
--db sqlite:///x.db --once --batch-size B`` in a fresh process, with no ``MALLOC_*`` variable in its
environment — over a folder of N images and over one of 3N images (``--images`` is 3N), each into a fresh
database, and reports the *marginal* rate ``2N / (t(3N) - t(N))``: interpreter and model start, the
migrations and the end-of-run work are the same in both runs and cancel. Each round measures the raw
forward pass (this process, eager, same batch size) before and after its two commands; the round's ratio
is its marginal rate over their mean. ``--compile`` / ``--channels-last`` are passed to the command (the
compilation happens in both runs and cancels too); the raw forward pass stays eager, so the ratio says
what the option gives against the plain model.

``--mode allocator`` runs the same command over ``--images`` JPEGs with ``[runtime] allocator = "default"``
(glibc's own malloc settings, the state before the worker pinned them) and ``"pinned"`` alternately, and
prints wall, user and system seconds of each.

In-process mode (the default):

Makes a folder of ``--images`` 640x480 JPEGs (crops of real photos with jitter, distinct bytes). Each
round: the raw forward pass of the same model at the same batch size (``torch.inference_mode``,
preprocessed tensors, a tight loop of ``--raw-seconds``), then ``worker run --once`` over the whole
folder into a fresh database, timed in-process from its first scan to its last commit — scan, hash,
register, claim, decode, sidecars, resize, CAM, statistics, flags, thumbnails, commits, drift — then the
raw forward pass again. A round's ratio is its end-to-end images/s over the mean of the raw rates
measured just before and just after it, so the machine's speed drifting during the run (this shared VM
drifts by ±20 % within a minute) cancels out instead of biasing one side. The model is loaded once,
before the first round (reported apart); each round's worker migrates its fresh database outside the
timing.

Printed: per round, the overall ratio (all images over all worker time, against the mean raw rate) and
the median round ratio; RSS sampled during the rounds (``--images 5000 --rounds 1`` for the long run:
memory should stay flat); database bytes per image; the allocator settings in force.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camwatch.settings import RuntimeSettings, Settings, load_settings
from worker.cam.engine import CamEngine
from worker.cam.factory import build_engine
from worker.runtime import configure_runtime
from worker.service.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
LAST_SYSTEM_SECONDS: list[float] = []  # system CPU seconds of the last command


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


def raw_forward(cam: CamEngine, batch: int, seconds: float, cpu: list[float] | None = None) -> float:
    """Images/s of the bare model on a preprocessed batch, in a tight loop under inference_mode (and the
    process's CPU seconds per image appended to ``cpu``)."""
    x = torch.randn(batch, 3, *cam.loaded.preprocessing.size)
    model = cam.loaded.module
    with torch.inference_mode():
        model(x)
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            model(x)
            n += batch
    if cpu is not None:
        cpu.append((time.process_time() - c0) / n)
    return n / (time.perf_counter() - t0)


def run_round(settings: Settings, cam: CamEngine) -> tuple[Worker, float]:
    worker = Worker(settings, engine=cam)
    worker.bootstrap()  # migrations of the fresh database happen here, untimed
    t0 = time.perf_counter()
    worker.work(burst=True)
    return worker, time.perf_counter() - t0


def run_command(folder: Path, db: Path, args: argparse.Namespace) -> tuple[float, float, int, str]:
    """Wall and CPU seconds (user + system) of the README command over ``folder``, the images it
    processed, its runtime log line."""
    import resource

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "CAMWATCH_"))}
    env.pop("LD_PRELOAD", None)
    if args.allocator != "pinned":
        env["CAMWATCH_RUNTIME__ALLOCATOR"] = args.allocator  # the before-state: glibc's defaults
    command = [sys.executable, "-m", "worker", "run", "--source", str(folder), "--db", f"sqlite:///{db}", "--once",
               "--batch-size", str(args.batch_size), "--model", args.model, "--method", args.method]
    command += ["--compile"] * args.compile + ["--channels-last"] * args.channels_last
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    LAST_SYSTEM_SECONDS[:] = [r1.ru_stime - r0.ru_stime]
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {done.stderr[-3000:]}")
    import sqlite3

    with sqlite3.connect(db) as con:
        (n,) = con.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()
    runtime = next((line for line in done.stderr.splitlines() if '"runtime:' in line), "(no runtime line)")
    return elapsed, cpu, n, runtime


def subprocess_mode(args: argparse.Namespace, tmp: Path, cam: CamEngine) -> None:
    small_n = args.images // 3
    big, small = tmp / "big", tmp / "small"
    make_folder(big, 3 * small_n)
    files = sorted(big.rglob("*.jpg"))[:small_n]
    for f in files:
        (small / f.parent.name).mkdir(parents=True, exist_ok=True)
        (small / f.parent.name / f.name).write_bytes(f.read_bytes())
    print(f"subprocess mode: {small_n} and {3 * small_n} JPEGs 640x480, flags: "
          f"{'--compile ' * args.compile}{'--channels-last' * args.channels_last or ''}", flush=True)
    rows = []
    cpu_rows = []  # (command CPU s per marginal image, raw CPU s per image)
    for r in range(args.rounds):
        raw_cpu: list[float] = []
        before = raw_forward(cam, args.batch_size, args.raw_seconds, raw_cpu)
        order = [(small, small_n), (big, 3 * small_n)] if r % 2 == 0 else [(big, 3 * small_n), (small, small_n)]
        times: dict[int, float] = {}
        cpus: dict[int, float] = {}
        for folder, n in order:
            elapsed, cpu, done, runtime = run_command(folder, tmp / f"sub-{r}-{n}.db", args)
            if done != n:
                raise SystemExit(f"{done} of {n} images processed")
            times[n], cpus[n] = elapsed, cpu
        after = raw_forward(cam, args.batch_size, args.raw_seconds, raw_cpu)
        raw = (before + after) / 2
        marginal = 2 * small_n / (times[3 * small_n] - times[small_n])
        cpu_marginal = (cpus[3 * small_n] - cpus[small_n]) / (2 * small_n)
        rows.append((marginal, raw, times[small_n], times[3 * small_n]))
        cpu_rows.append((cpu_marginal, statistics.fmean(raw_cpu)))
        print(f"round {r + 1}: {small_n} images {times[small_n]:.1f} s, {3 * small_n} images "
              f"{times[3 * small_n]:.1f} s -> marginal {marginal:.1f} img/s; raw forward {before:.1f} before, "
              f"{after:.1f} after; ratio {marginal / raw:.2f}; CPU per image: command {1000 * cpu_marginal:.1f} "
              f"ms, raw {1000 * cpu_rows[-1][1]:.1f} ms, ratio {cpu_rows[-1][1] / cpu_marginal:.2f}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"command's runtime line: {runtime}")
    total_marginal = 2 * small_n * len(rows) / sum(r[3] - r[2] for r in rows)
    raw_mean = statistics.fmean(r[1] for r in rows)
    print(f"marginal rate {total_marginal:.1f} img/s; raw forward ({args.model}, batch {args.batch_size}, eager, "
          f"inference_mode) {raw_mean:.1f} img/s")
    print(f"ratio marginal / raw forward: overall {total_marginal / raw_mean:.2f}, median of rounds "
          f"{statistics.median(r[0] / r[1] for r in rows):.2f}; startup+end of run "
          f"{statistics.median(r[2] - small_n / r[0] for r in rows):.1f} s")
    cmd_cpu, raw_cpu_mean = statistics.fmean(c[0] for c in cpu_rows), statistics.fmean(c[1] for c in cpu_rows)
    print(f"per CPU second (user + system, less disturbed by other processes): command {1000 * cmd_cpu:.1f} ms "
          f"per marginal image, raw forward {1000 * raw_cpu_mean:.1f} ms per image, ratio "
          f"{raw_cpu_mean / cmd_cpu:.2f} (median of rounds {statistics.median(c[1] / c[0] for c in cpu_rows):.2f})")


def allocator_mode(args: argparse.Namespace, tmp: Path) -> None:
    """The README command over the same ``--images`` JPEGs with ``[runtime] allocator`` "default" (glibc's
    own settings: the state before the worker pinned it) and "pinned" (what users get), alternating."""
    folder = tmp / "src"
    make_folder(folder, args.images)
    print(f"allocator mode: {args.images} JPEGs 640x480, the command with allocator default / pinned", flush=True)
    totals: dict[str, list[tuple[float, float, float]]] = {"default": [], "pinned": []}
    for r in range(args.rounds):
        for allocator in (("default", "pinned") if r % 2 == 0 else ("pinned", "default")):
            args.allocator = allocator
            elapsed, cpu, done, _ = run_command(folder, tmp / f"alloc-{r}-{allocator}.db", args)
            system = LAST_SYSTEM_SECONDS[0]
            totals[allocator].append((elapsed, cpu - system, system))
            print(f"round {r + 1} {allocator:8s}: {done} images, wall {elapsed:.1f} s, user {cpu - system:.1f} s, "
                  f"system {system:.1f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    for allocator, rows in totals.items():
        print(f"{allocator:8s}: wall {sum(r[0] for r in rows):.1f} s, user {sum(r[1] for r in rows):.1f} s, "
              f"system {sum(r[2] for r in rows):.1f} s over {len(rows)} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    parser.add_argument("--mode", choices=["inprocess", "subprocess", "allocator"], default="inprocess")
    parser.add_argument("--compile", action="store_true", help="worker with --compile (raw forward stays eager)")
    parser.add_argument("--channels-last", action="store_true", dest="channels_last")
    parser.add_argument("--allocator", choices=["pinned", "default"], default="pinned",
                        help="subprocess mode: the command's [runtime] allocator (default: what users get)")
    args = parser.parse_args()
    alloc = {k: os.environ.get(k, "(unset)") for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")}
    report = configure_runtime(RuntimeSettings())  # what the worker's commands do at start
    print(f"torch {torch.__version__}; {report.describe()}; allocator variables {alloc}; load {os.getloadavg()}")
    if args.mode == "allocator":
        with tempfile.TemporaryDirectory() as tmp:
            allocator_mode(args, Path(tmp))
        return
    if args.mode == "subprocess":
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cam = build_engine(load_settings(model=args.model, method=args.method))
            print(f"model load: {time.perf_counter() - t0:.1f} s")
            subprocess_mode(args, Path(tmp), cam)
        print(f"load average at the end {os.getloadavg()}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "src"
        t0 = time.perf_counter()
        make_folder(folder, args.images)
        print(f"made {args.images} JPEGs 640x480 in {time.perf_counter() - t0:.1f} s; {args.rounds} rounds")

        def settings_for(round_: int) -> Settings:
            return load_settings(db=f"sqlite:///{tmp}/bench-{round_}.db", source=[folder], model=args.model,
                                 method=args.method, batch_size=args.batch_size, stable_seconds=0.05,
                                 poll_seconds=0.01, use_events=False, compile=args.compile,
                                 channels_last=args.channels_last)

        t0 = time.perf_counter()
        cam = build_engine(settings_for(0))
        print(f"model load: {time.perf_counter() - t0:.1f} s")
        floor = cam
        if args.compile or args.channels_last:  # the raw forward pass stays the eager model's
            floor = build_engine(load_settings(model=args.model, method=args.method))
            t0 = time.perf_counter()
            cam.run(torch.zeros(args.batch_size, 3, *cam.loaded.preprocessing.size))  # compiles this shape
            print(f"warm-up batch (compilation): {time.perf_counter() - t0:.1f} s")

        samples: list[tuple[int, float]] = []
        progress: list[Worker] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                samples.append((progress[-1].processed if progress else 0, rss_mb()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rows: list[tuple[int, float, float]] = []  # images, seconds, raw img/s (mean of before and after)
        errors = 0
        cpu_ratios: list[float] = []  # raw CPU s per image over the worker's (this process, all threads)
        for r in range(args.rounds):
            raw_cpu: list[float] = []
            before = raw_forward(floor, args.batch_size, args.raw_seconds, raw_cpu)
            worker = Worker(settings_for(r), engine=cam, freeze_gc=True)  # as the command does
            worker.bootstrap()  # migrates the fresh database, untimed
            progress[:] = [worker]
            t0, c0 = time.perf_counter(), time.process_time()
            worker.work(burst=True)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            after = raw_forward(floor, args.batch_size, args.raw_seconds, raw_cpu)
            cpu_ratios.append(statistics.fmean(raw_cpu) / (cpu / max(worker.processed, 1)))
            errors += worker.errors
            raw = (before + after) / 2
            rows.append((worker.processed, elapsed, raw))
            e2e = worker.processed / elapsed
            print(f"round {r + 1}: {worker.processed} images in {elapsed:.2f} s = {e2e:.1f} img/s; raw forward "
                  f"{before:.1f} before, {after:.1f} after; ratio {e2e / raw:.2f}; per CPU second "
                  f"{cpu_ratios[-1]:.2f}; load {os.getloadavg()[0]:.1f}", flush=True)
        stop.set()
        sampler.join()

        images, seconds = sum(r[0] for r in rows), sum(r[1] for r in rows)
        raw_mean = statistics.fmean(r[2] for r in rows)
        print(f"worker run --once: {images} images in {seconds:.1f} s = {images / seconds:.1f} img/s "
              f"(errors {errors})")
        print(f"raw forward ({args.model}, batch {args.batch_size}, inference_mode, mean of "
              f"{2 * len(rows)} slices of {args.raw_seconds:g} s): {raw_mean:.1f} img/s")
        print(f"ratio end-to-end / raw forward: overall {images / seconds / raw_mean:.2f}, "
              f"median of rounds {statistics.median(r[0] / r[1] / r[2] for r in rows):.2f}; per CPU second "
              f"(less disturbed by other processes) median of rounds {statistics.median(cpu_ratios):.2f}")
        if samples:
            marks = [samples[int(f * (len(samples) - 1))] for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
            print("RSS during the run (images done in the round -> MB): "
                  + ", ".join(f"{n} -> {mb:.0f}" for n, mb in marks))
        db_size = sum(p.stat().st_size for p in Path(tmp).glob("bench-0.db*"))
        print(f"database: {db_size / 1024:.0f} KiB for {args.images} images "
              f"({db_size / max(args.images, 1):.0f} bytes/image incl. thumbnails of flagged images)")


if __name__ == "__main__":
    main()
