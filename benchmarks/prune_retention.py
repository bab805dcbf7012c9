"""Retention on a large database while the worker runs: ``camwatch prune --older-than 90d``.

    python benchmarks/prune_retention.py [--images 1000000] [--days 180] [--work /tmp/camwatch-prune]

1. Builds (once, cached under /tmp/camwatch-bench/) a synthetic database of ``--images`` images spread over
   ``--days`` days ending now (``demo.synthetic.fill``; flagged images carry thumbnails), and copies it.
2. Starts the real worker (``python -m worker run``, EfficientNet-Lite0) on a demo stream that keeps
   arriving one image a second for the whole run (``demo.generate --live``), into the same database.
3. Once the worker has processed its first images, runs ``python -m worker prune --older-than 90d`` as a
   user would, timed; then stops the worker (SIGTERM) and waits for it.
4. Prints rows per table and database bytes (file + WAL) before and after, the worker's latency from a
   file's registration to its committed result while prune ran and before (a blocked worker would show
   long latencies), and finally the size after one full ``VACUUM`` (``prune --vacuum``; the worker stopped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from db.models import Image  # noqa: E402
from db.prune import table_rows  # noqa: E402
from db.queries_slices import database_size  # noqa: E402
from db.session import make_engine  # noqa: E402

CACHE_DIR = Path("/tmp/camwatch-bench")
ENV = dict(os.environ)  # the worker applies its allocator settings itself (worker/runtime.py)


def cached_database(n_images: int, days: float) -> Path:
    from demo.synthetic.fill import GENERATOR_VERSION, fill_database

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"camwatch-{n_images}-{days:g}d-v{GENERATOR_VERSION}.db"
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        for leftover in CACHE_DIR.glob(partial.name + "*"):
            leftover.unlink()
        summary = fill_database(f"sqlite:///{partial}", n_images, seed=0, days=days)
        print(f"generated {summary.n_images:,} images over {days:g} days in {summary.seconds:.0f} s")
        engine = make_engine(f"sqlite:///{partial}")
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        partial.rename(path)
    return path


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:,.1f} MiB"


def _latencies(url: str, start: dt.datetime, end: dt.datetime) -> list[float]:
    """Seconds from registration (the scanner found the file) to the committed result, for the stream's
    images processed in ``[start, end]``."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Image.first_seen_at, Image.processed_at).where(
                Image.source != "cameras", Image.status == "ok", Image.processed_at >= start,
                Image.processed_at <= end)).all()
    finally:
        engine.dispose()
    return sorted((p - f).total_seconds() for f, p in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=180.0)
    parser.add_argument("--older-than", default="90d")
    parser.add_argument("--work", type=Path, default=Path("/tmp/camwatch-prune"))
    args = parser.parse_args(argv)
    source = cached_database(args.images, args.days)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    db = args.work / "camwatch.db"
    shutil.copyfile(source, db)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Image)).scalar_one()
    before_rows, before_bytes = table_rows(engine), database_size(engine)
    engine.dispose()
    print(f"database: {total:,} images over {args.days:g} days, {_mib(before_bytes)}; load {os.getloadavg()[0]:.1f}")

    stream = args.work / "stream"
    generator = subprocess.Popen([sys.executable, "-m", "demo.generate", "--out", str(stream), "--days", "1",
                                  "--images", "900", "--planted-day", "0", "--global-change-day", "0",
                                  "--live", "900"], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=(args.work / "generator.log").open("w"))
    worker = subprocess.Popen([sys.executable, "-m", "worker", "run", "--source", str(stream), "--db", url,
                               "--stable-seconds", "0.5", "--poll-seconds", "0.5", "--batch-size", "8"], cwd=ROOT,
                              env=ENV, stdout=subprocess.DEVNULL, stderr=(args.work / "worker.log").open("w"))
    try:
        started = dt.datetime.now(dt.UTC)
        while len(_latencies(url, started, dt.datetime.now(dt.UTC))) < 40:  # model loaded, stream flowing
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited early; see {args.work / 'worker.log'}")
            time.sleep(2)
        prune_began = dt.datetime.now(dt.UTC)
        began = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "worker", "prune", "--db", url, "--older-than",
                                 args.older_than], cwd=ROOT, env=ENV, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        prune_ended = dt.datetime.now(dt.UTC)
        print(result.stdout.strip())
        if result.returncode != 0:
            print(result.stderr[-3000:])
            return result.returncode
        time.sleep(5)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(120)
        generator.send_signal(signal.SIGTERM)
        generator.wait(60)
    during = _latencies(url, prune_began, prune_ended)
    before = _latencies(url, started, prune_began)
    print(f"prune wall time {seconds:.1f} s; meanwhile the worker committed {len(during)} of the images arriving "
          f"at 1 img/s: seconds from registration to result median {statistics.median(during or [math.nan]):.1f}, "
          f"max {max(during, default=math.nan):.1f} (before prune: median "
          f"{statistics.median(before or [math.nan]):.1f}, max {max(before, default=math.nan):.1f}, "
          f"{len(before)} images)")
    engine = make_engine(url)
    after_rows, after_bytes = table_rows(engine), database_size(engine)
    engine.dispose()
    print(f"\n{'':18s}{'before':>14s}{'after':>14s}")
    for table in before_rows:
        print(f"{table:18s}{before_rows[table]:>14,}{after_rows[table]:>14,}")
    print(f"{'bytes':18s}{_mib(before_bytes):>14s}{_mib(after_bytes):>14s}")
    began = time.perf_counter()
    vacuum = subprocess.run([sys.executable, "-m", "worker", "prune", "--db", url, "--older-than", args.older_than,
                             "--vacuum"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    engine = make_engine(url)
    print(f"\nafter one full VACUUM (worker stopped; {time.perf_counter() - began:.0f} s): {_mib(database_size(engine))}"
          + ("" if vacuum.returncode == 0 else f" (failed: {vacuum.stderr[-500:]})"))
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
