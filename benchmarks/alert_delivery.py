"""Alert delivery off the hot path: worker throughput on the planted stream (tests/support/planted.py, 120
images, tiny model, drift and alerts after every batch) with no receiver, a dead one (connection refused)
and a failing one (HTTP 500 after 1 s), in interleaved rounds; and the notification latency to a healthy
local receiver (queued → received, and drift pass end → received).

    .venv/bin/python benchmarks/alert_delivery.py [--rounds 3]

Wall time includes the worker's shutdown, which gives pending notices up to 5 s to drain; "processing" is
the time until the last batch was committed (the loop's own work), which a receiver must not slow.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camwatch.settings import load_settings  # noqa: E402
from tests.support.models import TINY_SPEC  # noqa: E402
from tests.support.planted import plant_stream  # noqa: E402
from tests.support.receivers import free_port, webhook_receiver  # noqa: E402
from worker.service.worker import Worker  # noqa: E402


def run(tmp: Path, src: Path, name: str, url: str | None) -> tuple[float, float]:
    settings = load_settings(db=f"sqlite:///{tmp / f'{name}.db'}", source=[src], model=TINY_SPEC,
                             path_tags=["site", "camera"], stable_seconds=0.0, poll_seconds=0.05, batch_size=16,
                             reference={"first_n": 60}, drift={"every_batches": 1,
                                                              "statistics": ["brightness", "contrast"]},
                             alerts={"webhook_url": url, "backoff_seconds": 0.5, "max_attempts": 4})
    worker = Worker(settings)
    processing: list[float] = []
    original = worker.process_once
    began = time.monotonic()

    def timed() -> int:
        written = original()
        if written:
            processing.append(time.monotonic() - began)
        return written

    worker.process_once = timed  # type: ignore[method-assign]
    worker.work(burst=True)
    return time.monotonic() - began, processing[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = plant_stream(tmp / "src")
        results: dict[str, list[tuple[float, float]]] = {"none": [], "refused": [], "http500": [], "healthy": []}
        latencies: list[float] = []
        with webhook_receiver(status=500, delay=1.0) as failing, webhook_receiver() as healthy:
            urls = {"none": None, "refused": f"http://127.0.0.1:{free_port()}/hook", "http500": failing.url,
                    "healthy": healthy.url}
            for r in range(args.rounds):
                for name, url in urls.items():
                    before = len(healthy.received)
                    wall, processing = run(tmp, src, f"{name}-{r}", url)
                    results[name].append((wall, processing))
                    if name == "healthy":
                        latencies += [x.wall - dt.datetime.fromisoformat(x.body["last_seen"]).timestamp()
                                      for x in healthy.received[before:]]
        base = statistics.median(p for _, p in results["none"])
        print(f"{'receiver':10} {'wall s (median)':>16} {'processing s':>13} {'img/s':>7} {'vs none':>8}")
        for name, rows in results.items():
            wall = statistics.median(w for w, _ in rows)
            proc = statistics.median(p for _, p in rows)
            print(f"{name:10} {wall:16.2f} {proc:13.2f} {120 / proc:7.1f} {proc / base:8.2f}")
        print(f"healthy receiver: {len(latencies)} notices; evaluation -> received: median "
              f"{1000 * statistics.median(latencies):.1f} ms, max {1000 * max(latencies):.1f} ms; "
              f"requests to the failing receiver: {failing.requests}")


if __name__ == "__main__":
    main()
