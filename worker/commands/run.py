"""``camwatch run``: the monitoring worker over the source folders (continuously, or ``--once``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from camwatch.heads import TARGET_MODES
from worker.commands.common import MODEL_KEYS, add_model_args, settings_from

RUN_KEYS = ("db", "source", "worker_id", "thumbnails", "stable_seconds", "poll_seconds", "lease_seconds", "target")


def cmd_run(args: argparse.Namespace) -> int:
    from worker.logs import configure_structured_logging
    from worker.service.worker import Worker

    configure_structured_logging(args.verbose)
    settings = settings_from(args, (*MODEL_KEYS, *RUN_KEYS))
    if not settings.source:
        raise ValueError("no source folder: pass --source DIR (or set CAMWATCH_SOURCE / source in camwatch.toml)")
    worker = Worker(settings)
    worker.install_signal_handlers()
    worker.work(burst=args.once)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="watch source folders and monitor every image")
    p.add_argument("--source", type=Path, action="append", help="folder to watch (repeatable)")
    p.add_argument("--db", help="database URL (default sqlite:///camwatch.db)")
    p.add_argument("--once", action="store_true", help="process everything present, then exit")
    p.add_argument("--worker-id", dest="worker_id")
    p.add_argument("--thumbnails", choices=["all", "flagged", "none"])
    p.add_argument("--stable-seconds", type=float, dest="stable_seconds")
    p.add_argument("--poll-seconds", type=float, dest="poll_seconds")
    p.add_argument("--lease-seconds", type=float, dest="lease_seconds")
    p.add_argument("--target", choices=TARGET_MODES,
                   help="class to explain: top1 (default), label (the image's known label, else top-1), or both "
                        "(two heatmaps when the label is known and differs)")
    add_model_args(p)
    p.set_defaults(func=cmd_run)
