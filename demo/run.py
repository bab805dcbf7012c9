"""``make demo``: generate the demo stream, run the worker on it, open the dashboard.

    python -m demo.run [--out demo_data] [--live 300] [--port 8501]

1. ``demo.generate`` writes 13 of the 14 simulated days at once, then streams the last day into the
   folder over ``--live`` seconds (files appear while you watch).
2. ``camwatch run`` (``python -m worker run``) watches the folder with the real EfficientNet-Lite0 model and Grad-CAM,
   builds the reference from the first images, flags and keeps drift current.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_data"))
    parser.add_argument("--live", type=float, default=300.0, help="seconds over which the last day streams in")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo: %(message)s")

    stream, db_file = args.out / "stream", args.out / "camwatch.db"
    if args.out.exists():
        shutil.rmtree(stream, ignore_errors=True)
        for leftover in args.out.glob("camwatch.db*"):
            leftover.unlink()
    stream.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{db_file}"
    py = sys.executable
    procs = {
        "generator": _start([py, "-m", "demo.generate", "--out", str(stream), "--seed", str(args.seed),
                             "--live", str(args.live), "--force"], args.out / "generator.log"),
        "worker": _start([py, "-m", "worker", "run", "--source", str(stream), "--db", url,
                          "--stable-seconds", "1"], args.out / "worker.log"),
        "dashboard": _start([py, "-m", "worker", "dashboard", "--port", str(args.port), "--db", url,
                             "--source-root", str(stream)], args.out / "dashboard.log"),
    }
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
