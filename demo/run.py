"""``make demo``: generate the demo stream, run the worker on it, open the dashboard.

    python -m demo.run [--out demo_data] [--live 300] [--port 8501] [--source folder|redis]

1. ``demo.generate`` writes 13 of the 14 simulated days at once, then streams the last day into the
   folder over ``--live`` seconds (files appear while you watch). With ``--source redis`` (``make demo
   SOURCE=redis``) it publishes every frame as a ``camwatch.image.v1`` event (JPEG inline, the sidecar's
   annotations in the event) to the stream ``camwatch.demo`` of ``--redis`` instead.
2. ``camwatch run`` (``python -m worker run``) watches the folder (or reads the stream) with the real
   EfficientNet-Lite0 model and Grad-CAM, builds the reference from the first images, flags and keeps drift
   current.
3. ``camwatch dashboard`` serves http://localhost:PORT (bound to 127.0.0.1).

Everything stops on Ctrl-C (the worker finishes its batch first). The data stay in ``--out`` so the
dashboard can be reopened later with ``make dashboard DB=sqlite:///demo_data/camwatch.db``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("demo")


def _start(cmd: list[str], log_file: Path) -> subprocess.Popen:
    """Start a child in its own session: Ctrl-C reaches only this script, which then stops the children in
    order (the worker finishes its batch on SIGTERM) instead of every process being interrupted at once."""
    log.info("starting: %s (log: %s)", " ".join(cmd), log_file)
    return subprocess.Popen(cmd, stdout=log_file.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


DEMO_STREAM = "camwatch.demo"


def commands(out: Path, source: str, redis: str, seed: int, live: float, port: int) -> dict[str, list[str]]:
    """The generator, worker and dashboard command lines of the demo (``source``: 'folder' or 'redis')."""
    py, stream, url = sys.executable, out / "stream", f"sqlite:///{out / 'camwatch.db'}"
    generator = [py, "-m", "demo.generate", "--out", str(stream), "--seed", str(seed), "--live", str(live), "--force"]
    if source == "redis":
        location = f"{redis}?stream={DEMO_STREAM}&group=camwatch-demo"
        generator += ["--publish", location]
        worker = ["--source", location, "--spool-dir", str(out / "spool")]
        roots = ["--source-root", str(out / "spool")]
    else:
        worker = ["--source", str(stream), "--stable-seconds", "1"]
        roots = ["--source-root", str(stream)]
    return {"generator": generator, "worker": [py, "-m", "worker", "run", "--db", url, *worker],
            "dashboard": [py, "-m", "worker", "dashboard", "--port", str(port), "--db", url, *roots]}


def _reset_stream(redis_url: str) -> None:
    """Remove the demo's own stream (and its dead letters) left by an earlier run."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(DEMO_STREAM, DEMO_STREAM + ".dead")
    except redis.ConnectionError as exc:
        raise SystemExit(f"demo: cannot reach Redis at {redis_url} ({exc}); start it with: redis-server "
                         "--daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no") from None
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_data"))
    parser.add_argument("--live", type=float, default=300.0, help="seconds over which the last day streams in")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", choices=["folder", "redis"], default="folder",
                        help="how the images reach the worker: files in a folder, or events on a Redis stream")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for --source redis")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo: %(message)s")

    stream, db_file = args.out / "stream", args.out / "camwatch.db"
    if args.out.exists():
        shutil.rmtree(stream, ignore_errors=True)
        shutil.rmtree(args.out / "spool", ignore_errors=True)
        for leftover in args.out.glob("camwatch.db*"):
            leftover.unlink()
    stream.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{db_file}"
    if args.source == "redis":
        _reset_stream(args.redis)
    procs = {name: _start(cmd, args.out / f"{name}.log") for name, cmd in
             commands(args.out, args.source, args.redis, args.seed, args.live, args.port).items()}
    stop = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    log.info("dashboard: http://localhost:%d  (the worker fills it as images arrive; Ctrl-C stops the demo)",
             args.port)
    try:
        while not stop:
            time.sleep(1.0)
            for name in ("worker", "dashboard"):
                code = procs[name].poll()
                if code is not None:
                    log.error("%s exited with code %s; see %s", name, code, args.out / f"{name}.log")
                    stop = True
            if procs["generator"].poll() not in (None, 0):
                log.error("the generator failed; see %s", args.out / "generator.log")
                stop = True
    finally:
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in 60 s; killing it", name)
                    proc.kill()
        log.info("demo stopped; the data stay in %s (reopen: make dashboard DB=%s)", args.out, url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
