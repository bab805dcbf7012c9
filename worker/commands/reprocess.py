"""``camwatch reprocess --model SPEC --since DATE [--until DATE] [--source ...]``: re-run the processed
images of a capture-time range with another model, its results stored under that model's own version
beside every other version's (:mod:`worker.service.reprocess`). The original files must still be readable
under the configured roots: stored thumbnails are not enough. A rerun skips the images already done."""

from __future__ import annotations

import argparse
import datetime as dt
import logging

from camwatch.heads import TARGET_MODES
from worker.commands.common import MODEL_KEYS, add_model_args, settings_from

log = logging.getLogger(__name__)


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from exc
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def cmd_reprocess(args: argparse.Namespace) -> int:
    from db import make_engine, upgrade
    from worker.cam.factory import build_engine
    from worker.runtime import limit_blas_threads
    from worker.service.reprocess import ORIGINALS_NEEDED, reprocess
    from worker.service.worker import register_engine

    if args.until is not None and args.until <= args.since:
        raise ValueError(f"--until ({args.until:%Y-%m-%d %H:%M}) must be after --since ({args.since:%Y-%m-%d %H:%M})")
    settings = settings_from(args, (*MODEL_KEYS, "db", "target", "source"))
    limit_blas_threads()
    db = make_engine(settings.db)
    upgrade(db)
    cam = build_engine(settings)
    version = register_engine(db, cam, settings.target)
    report = reprocess(db, settings, cam, version, args.since, args.until, args.only_source, redo=args.redo)
    print(f"model version {version}: {report.written:,} images reprocessed, "  # noqa: T201
          f"{len(report.failed):,} could not be read, {report.drift:,} drift results")
    if report.failed:
        for image_id, reason in list(report.failed.items())[:10]:
            print(f"  image {image_id}: {reason}")  # noqa: T201
        print(f"note: {ORIGINALS_NEEDED}")  # noqa: T201
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reprocess", help="re-run a capture-time range with another model (results kept per version)",
                       description=__doc__)
    p.add_argument("--since", required=True, type=_moment, help="capture time from (ISO 8601, UTC if naive)")
    p.add_argument("--until", type=_moment, help="capture time before (ISO 8601, UTC if naive; default: no end)")
    p.add_argument("--source", action="append", dest="only_source", metavar="NAME",
                   help="only the images of this source name (repeatable; default: all)")
    p.add_argument("--folder", action="append", dest="source", metavar="DIR",
                   help="a source folder the originals are read under (default: the configured sources)")
    p.add_argument("--db", help="database URL (default sqlite:///camwatch.db)")
    p.add_argument("--redo", action="store_true", help="recompute images that already have this version's result")
    p.add_argument("--target", choices=TARGET_MODES, help="class to explain (as for run)")
    add_model_args(p)
    p.set_defaults(func=cmd_reprocess)
