"""Dashboard latency on a large database: first render and filter change of every page.

    python benchmarks/dashboard_latency.py [--images 1000000] [--db URL] [--no-indexes] [--repeat 3]

Builds (once, cached under /tmp/camwatch-bench/) a synthetic database with ``demo.synthetic.fill.fill_database``,
creates the indexes the dashboard's queries want (:data:`RECOMMENDED_INDEXES`) when they are missing
(unless ``--no-indexes``), then runs every page through ``streamlit.testing.v1.AppTest``:

- *first render*: a new session with the query cache cleared, the page's first run;
- *filter change*: one widget changed on that page (time range, statistic, rule, image id...) and the
  rerun, cache still cold for the new filter.

The Python process is warmed up first (imports, engine, schema check), as a running server would be; that
cold start is printed separately. Times are wall-clock seconds, median of ``--repeat`` sessions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Index  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from db.models import Image  # noqa: E402
from db.session import make_engine  # noqa: E402

log = logging.getLogger("dashboard_latency")

CACHE_DIR = Path("/tmp/camwatch-bench")
APP = str(ROOT / "dashboard" / "app.py")
#: Indexes the dashboard's queries use beyond those of db/models.py.
RECOMMENDED_INDEXES = (
    Index("ix_images_processed_at", Image.processed_at),  # Overview throughput (last 24 h by processed_at)
    Index("ix_images_captured_at_status", Image.captured_at, Image.status),  # status counts per time range
)


def ensure_database(url: str | None, n_images: int) -> str:
    """The benchmark database URL, generated when the cached file is missing (built under a temporary
    name, renamed when complete)."""
    if url is not None:
        return url
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    from demo.synthetic.fill import GENERATOR_VERSION, fill_database

    path = CACHE_DIR / f"camwatch-{n_images}-v{GENERATOR_VERSION}.db"
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        for leftover in CACHE_DIR.glob(partial.name + "*"):
            leftover.unlink()
        log.info("generating %d synthetic images into %s (cached for later runs)", n_images, path)
        summary = fill_database(f"sqlite:///{partial}", n_images, seed=0)
        print(f"generated {summary.n_images:,} images in {summary.seconds:.0f} s")
        engine = make_engine(f"sqlite:///{partial}")
        with engine.connect() as conn:  # fold the WAL into the file before renaming it
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        partial.rename(path)
    return f"sqlite:///{path}"


def ensure_indexes(url: str) -> list[str]:
    """Create the recommended indexes that are missing; returns the names created."""
    engine = make_engine(url)
    created: list[str] = []
    try:
        for index in RECOMMENDED_INDEXES:
            began = time.perf_counter()
            with engine.begin() as conn:
                if index.name in {i["name"] for i in conn.dialect.get_indexes(conn, "images")}:
                    continue
                index.create(conn)
            created.append(str(index.name))
            print(f"created index {index.name} in {time.perf_counter() - began:.1f} s")
    finally:
        engine.dispose()
    return created


def _new_session(page: str | None, query_params: dict[str, str] | None = None) -> AppTest:
    import streamlit as st

    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in (query_params or {}).items():
        at.query_params[key] = value
    if page is not None:
        at.run()  # the default page first: AppTest can only switch pages after a run
        at.switch_page(page)
    st.cache_data.clear()
    return at


#: What each page must show after a run (so that a page stopping early cannot pass for a fast one).
EXPECTED: dict[str, Callable[[AppTest], bool]] = {
    "overview": lambda at: len(at.get("plotly_chart")) == 3 and len(at.metric) == 5,
    "drift": lambda at: len(at.get("plotly_chart")) >= 4,
    "flagged": lambda at: len(at.get("image")) == 24,
    "image": lambda at: "Statistics" in [s.value for s in at.subheader] and len(at.get("image")) >= 2,
    "slices": lambda at: len(at.get("plotly_chart")) == 3 and len(at.dataframe) == 2,
    "review": lambda at: any(b.label == "Correct flag" for b in at.button),
    "health": lambda at: len(at.dataframe) == 2,
}


def _check(at: AppTest, page: str) -> None:
    if len(at.exception):
        raise RuntimeError(f"{page}: {at.exception[0].value}")
    if page in EXPECTED and not EXPECTED[page](at):
        raise RuntimeError(f"{page}: the page did not render its expected elements")


Change = Callable[[AppTest], object]
PAGES: dict[str, tuple[str | None, Change, str]] = {
    "overview": (None, lambda at: at.selectbox(key="camwatch_time_range").set_value("Last 24 hours"),
                 "default time range -> 24 hours"),
    "drift": ("app_pages/drift.py", lambda at: at.selectbox(key="drift_statistic").set_value("centroid_x"),
              "statistic -> centroid_x"),
    "flagged": ("app_pages/flagged.py", lambda at: at.selectbox(key="flagged_rule").set_value("border_energy"),
                "rule -> border_energy"),
    "image": ("app_pages/image.py", lambda at: at.number_input(key="image_id").set_value(500_000),
              "image id -> 500000"),
    "review": ("app_pages/review.py", lambda at: at.selectbox(key="review_rule").set_value("border_energy"),
               "rule -> border_energy"),
    "slices": ("app_pages/slices.py", lambda at: at.selectbox(key="slices_statistic").set_value("centroid_x"),
               "statistic -> centroid_x"),
    "health": ("app_pages/health.py", lambda at: at.button[0].click(), "Refresh button (cache cleared)"),
}


def _all_time(at: AppTest) -> object:
    return at.selectbox(key="camwatch_time_range").set_value("All time")


#: Pages whose queries grow with the time range: measured again with the widest range.
ALL_TIME_PAGES = ("overview", "drift", "flagged", "slices")


def measure(name: str, image_id: int, change: Change | None = None) -> tuple[float, float]:
    page, default_change, _ = PAGES[name]
    change = change or default_change
    at = _new_session(page, {"image": str(image_id)} if name == "image" else None)
    began = time.perf_counter()
    at.run()
    first = time.perf_counter() - began
    _check(at, name)
    change(at)
    began = time.perf_counter()
    at.run()
    changed = time.perf_counter() - began
    _check(at, name)
    return first, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--db", help="use this database instead of the cached synthetic one")
    parser.add_argument("--no-indexes", action="store_true", help="do not create the recommended indexes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", nargs="*", default=list(PAGES), choices=list(PAGES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    url = ensure_database(args.db, args.images)
    if not args.no_indexes:
        ensure_indexes(url)
    os.environ["CAMWATCH_DB"] = url
    engine = make_engine(url)
    with engine.connect() as conn:
        n_images = conn.exec_driver_sql("SELECT count(*) FROM images").scalar_one()
        image_id = conn.exec_driver_sql("SELECT max(image_id) FROM flags").scalar_one() or 1
    engine.dispose()

    began = time.perf_counter()
    warm = _new_session(None)
    warm.run()
    _check(warm, "overview")
    print(f"database {url}: {n_images:,} images; process warm-up (imports, engine, first overview) "
          f"{time.perf_counter() - began:.2f} s; {dt.datetime.now():%Y-%m-%d %H:%M}, load {os.getloadavg()[0]:.1f}")
    print(f"\n{'page':10s} {'first render s':>15s} {'filter change s':>16s}  change")
    for name in args.pages:
        runs = [measure(name, image_id) for _ in range(args.repeat)]
        first = statistics.median(r[0] for r in runs)
        changed = statistics.median(r[1] for r in runs)
        print(f"{name:10s} {first:15.2f} {changed:16.2f}  {PAGES[name][2]}", flush=True)
    for name in [p for p in args.pages if p in ALL_TIME_PAGES]:
        runs = [measure(name, image_id, _all_time) for _ in range(args.repeat)]
        first = statistics.median(r[0] for r in runs)
        changed = statistics.median(r[1] for r in runs)
        print(f"{name:10s} {first:15.2f} {changed:16.2f}  time range -> All time", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
