"""Drift-update time per pass as the database grows (issue 15, "Throughput flat as the database grows",
drift part): the same pass after a 480-image batch on databases already holding about 0, 100,000 and
1,000,000 processed images of the model version.

    python benchmarks/drift_incremental.py [--sizes 0 100000 1000000] [--rounds 5] [--work /tmp/camwatch-drift-inc]

1. Builds once per size (cached under ``--work``) a synthetic database (:func:`demo.synthetic.fill.fill_database`,
   4,000 images a day on four cameras; size 0 is one 480-image batch, the least that holds a reference) and
   copies it.
2. Builds the reference (default ``first_n``) and records the drift state as current (the worker has kept
   up: watermark = the newest ``processed_at``), so that every timed pass is a steady-state pass.
3. Per round, for each size in turn (rounds interleaved across sizes, so that the machine's drifting speed
   hits every size alike): appends a 480-image batch (:func:`demo.synthetic.grow.append_batch`, captured on
   the day after the history, processed now) and times the incremental pass
   (:func:`worker.service.monitor.drift_pass`; before it, timed apart, the worker's reference check
   :func:`db.monitoring.ensure_reference`), then the part of main's pass that read the whole history
   (``processed_index`` + ``assign_windows`` over every processed image), which the incremental pass
   replaces with indexed queries.

Prints the median seconds per pass for each size and its ratio to the smallest size. Absolute times are
noisy on a shared machine; the ratios are what the goal is about (flat: about 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camwatch.monitoring.windows import assign_windows  # noqa: E402
from camwatch.settings import Settings  # noqa: E402
from db.drift_incremental import latest_processed_at, write_drift_state  # noqa: E402
from db.monitoring import ensure_reference, processed_index  # noqa: E402
from db.session import make_engine  # noqa: E402
from demo.synthetic.fill import GENERATOR_VERSION, fill_database  # noqa: E402
from demo.synthetic.grow import append_batch  # noqa: E402
from worker.service.monitor import drift_pass, settings_key  # noqa: E402

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PER_DAY = 4000
BATCH = 480


def _database(work: Path, size: int) -> tuple[Path, dt.datetime]:
    """The cached database of ``size`` images and the end of its history."""
    n = max(size, BATCH)
    days = n / PER_DAY
    path = work / f"history-{size}-v{GENERATOR_VERSION}.db"
    if not path.exists():
        partial = path.with_suffix(".part")
        partial.unlink(missing_ok=True)
        summary = fill_database(f"sqlite:///{partial}", n, seed=3, start=START, days=days, cameras=4, sites=2,
                                review_share=0.0, pending=0)
        print(f"built {size}: {summary.n_ok} processed images in {summary.seconds:.0f} s")
        partial.rename(path)
    return path, START + dt.timedelta(days=days)


def _old_history_read(engine: object, model_version_id: int, settings: Settings) -> float:
    began = time.perf_counter()
    index = processed_index(engine, model_version_id)  # type: ignore[arg-type]
    assign_windows([r.captured_at for r in index], settings.drift.window, settings.drift.window_count)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=5, choices=range(1, 21))
    parser.add_argument("--work", type=Path, default=Path("/tmp/camwatch-drift-inc"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    runs = {}
    for size in args.sizes:  # prepare every database first, then interleave the rounds across sizes
        cached, end = _database(args.work, size)
        path = args.work / f"run-{size}.db"
        shutil.copyfile(cached, path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        handle = ensure_reference(engine, settings.reference, 1, "gradcam")
        assert handle is not None
        write_drift_state(engine, handle.id, settings.drift.window_label, watermark=latest_processed_at(engine, 1),
                          reference_built_at=handle.built_at, settings_key=settings_key(settings.drift), windows=0)
        runs[size] = (path, url, end, engine, handle)
    results: dict[int, tuple[list[float], list[float], list[int], list[float]]] = {
        size: ([], [], [], []) for size in args.sizes}
    for r in range(args.rounds):
        for size, (_, url, end, engine, handle) in runs.items():
            append_batch(url, BATCH, captured_from=end + dt.timedelta(minutes=10 + 60 * r),
                         span=dt.timedelta(minutes=50), processed_at=dt.datetime.now(dt.UTC))
            began = time.perf_counter()
            handle = ensure_reference(engine, settings.reference, 1, "gradcam")  # as the worker's pass does
            assert handle is not None
            results[size][3].append(time.perf_counter() - began)
            began = time.perf_counter()
            done = drift_pass(engine, settings, handle, 1)
            results[size][0].append(time.perf_counter() - began)
            assert not done.full
            results[size][2].append(done.windows)
            results[size][1].append(_old_history_read(engine, 1, settings))
    for path, _, _, engine, _ in runs.values():
        engine.dispose()
        path.unlink()
    base = statistics.median(results[args.sizes[0]][0])
    for size, (passes, old, windows, reference) in results.items():
        median = statistics.median(passes)
        print(f"{size:>9} processed images: incremental drift pass {median:.3f} s (median of {len(passes)}; "
              f"{median / base:.2f}x the smallest; windows recomputed {windows}); reference check "
              f"{statistics.median(reference):.3f} s; main's whole-history read alone {statistics.median(old):.3f} s "
              "per pass")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
