"""Service commands: ``run`` (the monitoring worker), ``export`` and ``drift``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

RUN_KEYS = ("db", "source", "worker_id", "thumbnails", "stable_seconds", "poll_seconds", "lease_seconds")


def cmd_run(args: argparse.Namespace) -> int:
    from worker.cli import MODEL_KEYS, settings_from
    from worker.logs import configure_structured_logging
    from worker.service import Worker

    configure_structured_logging(args.verbose)
    settings = settings_from(args, (*MODEL_KEYS, *RUN_KEYS))
    if not settings.source:
        raise ValueError("no source folder: pass --source DIR (or set CAMWATCH_SOURCE / source in camwatch.toml)")
    worker = Worker(settings)
    worker.install_signal_handlers()
    worker.work(burst=args.once)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from db import make_engine, upgrade
    from worker.cli import settings_from
    from worker.export import export

    settings = settings_from(args, ("db",))
    engine = make_engine(settings.db)
    upgrade(engine)
    n = export(engine, args.format, args.out)
    print(f"{n} rows -> {args.out}")  # noqa: T201 - CLI output
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from db import make_engine, upgrade
    from db.models import ModelVersion
    from worker.cli import settings_from
    from worker.monitor import ensure_reference, recompute_drift

    settings = settings_from(args, ("db",))
    engine = make_engine(settings.db)
    upgrade(engine)
    with engine.connect() as conn:
        versions = conn.execute(select(ModelVersion.id, ModelVersion.method, ModelVersion.spec)).all()
    if not versions:
        print("no processed images yet: run `python -m worker run` first")  # noqa: T201
        return 0
    for version_id, method, spec in versions:
        handle = ensure_reference(engine, settings, version_id, method)
        if handle is None:
            print(f"{spec} ({method}): not enough images for the reference yet "  # noqa: T201
                  f"({settings.reference.kind})")
            continue
        written = recompute_drift(engine, settings, handle, version_id)
        print(f"{spec} ({method}): {written} drift results against reference {handle.id}")  # noqa: T201
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from worker.cli import add_model_args

    p = sub.add_parser("run", help="watch source folders and monitor every image")
    p.add_argument("--source", type=Path, action="append", help="folder to watch (repeatable)")
    p.add_argument("--db", help="database URL (default sqlite:///camwatch.db)")
    p.add_argument("--once", action="store_true", help="process everything present, then exit")
    p.add_argument("--worker-id", dest="worker_id")
    p.add_argument("--thumbnails", choices=["all", "flagged", "none"])
    p.add_argument("--stable-seconds", type=float, dest="stable_seconds")
    p.add_argument("--poll-seconds", type=float, dest="poll_seconds")
    p.add_argument("--lease-seconds", type=float, dest="lease_seconds")
    add_model_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("export", help="export one row per image")
    p.add_argument("--db")
    p.add_argument("--format", choices=["csv", "parquet", "jsonl"], required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("drift", help="(re)build the reference and recompute drift for every window")
    p.add_argument("--db")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_drift)
