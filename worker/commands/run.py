"""``camwatch run``: the monitoring worker over the source folders (continuously, or ``--once``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.commands.common import MODEL_KEYS, add_model_args, settings_from

RUN_KEYS = ("db", "source", "worker_id", "thumbnails", "stable_seconds", "poll_seconds", "lease_seconds",
            "max_attempts", "heartbeat_seconds", "dead_after_seconds")


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
    p.add_argument("--max-attempts", type=int, dest="max_attempts",
                   help="crashes of a worker processing an image alone before it is given up (default 3)")
    p.add_argument("--heartbeat-seconds", type=float, dest="heartbeat_seconds",
                   help="heartbeat and lease renewal interval (default 5)")
    p.add_argument("--dead-after-seconds", type=float, dest="dead_after_seconds",
                   help="a worker silent this long is taken for dead and its claims retried (default 60)")
    add_model_args(p)
    p.set_defaults(func=cmd_run)
