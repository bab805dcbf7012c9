"""``camwatch prune --older-than 90d [--keep-flagged] [--keep-reviewed]``: delete the bulky data of images
captured before the cutoff, in small transactions a running worker interleaves with, then give the space
back (:mod:`db.prune` says what goes and what stays). The worker runs the same job daily when
``[retention] older_than_days`` is set."""

from __future__ import annotations

import argparse
from pathlib import Path

from db import make_engine, upgrade
from db.prune import PruneOptions, count_candidates, parse_age, prune, table_rows
from worker.commands.common import settings_from


def _mib(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.1f} MiB"


def cmd_prune(args: argparse.Namespace) -> int:
    settings = settings_from(args, ("db",))
    options = PruneOptions(older_than=parse_age(args.older_than), keep_flagged=args.keep_flagged,
                           keep_reviewed=args.keep_reviewed, batch_size=args.batch_size,
                           pause_seconds=args.pause, vacuum=not args.no_reclaim, full_vacuum=args.vacuum)
    engine = make_engine(settings.db)
    upgrade(engine)
    if args.dry_run:
        n = count_candidates(engine, options)
        print(f"{n:,} images captured more than {args.older_than} ago would be pruned (dry run)")  # noqa: T201
        return 0
    before = table_rows(engine)
    report = prune(engine, options, runner=f"camwatch prune --older-than {args.older_than}")
    after = table_rows(engine)
    print(f"pruned {report.images:,} images captured before {report.cutoff:%Y-%m-%d %H:%M} UTC in "  # noqa: T201
          f"{report.seconds:.1f} s ({report.batches} transactions, longest {report.longest_batch_seconds:.3f} s)")
    print(f"database: {_mib(report.bytes_before)} -> {_mib(report.bytes_after)}; {report.vacuum}")  # noqa: T201
    for table in before:
        print(f"  {table:15s} {before[table]:>12,} -> {after[table]:>12,}")  # noqa: T201
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="delete heatmaps, thumbnails and results of old images (retention)",
                       description=__doc__)
    p.add_argument("--db")
    p.add_argument("--older-than", required=True, dest="older_than", metavar="AGE",
                   help="capture age, e.g. 90d, 12w, 36h")
    p.add_argument("--keep-flagged", action="store_true", dest="keep_flagged", help="keep flagged images whole")
    p.add_argument("--keep-reviewed", action="store_true", dest="keep_reviewed", help="keep reviewed images whole")
    p.add_argument("--batch-size", type=int, default=500, dest="batch_size", help="images per transaction")
    p.add_argument("--pause", type=float, default=0.05, help="seconds between transactions (default 0.05)")
    p.add_argument("--vacuum", action="store_true",
                   help="SQLite: one full VACUUM afterwards (blocks writers; switches an older database to "
                        "incremental auto-vacuum)")
    p.add_argument("--no-reclaim", action="store_true", dest="no_reclaim",
                   help="SQLite: leave freed pages for reuse instead of giving them back to the file system")
    p.add_argument("--dry-run", action="store_true", dest="dry_run", help="only count the images")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_prune)
