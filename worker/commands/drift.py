"""``camwatch drift``: (re)build each model version's reference and recompute drift for every window."""

from __future__ import annotations

import argparse
from pathlib import Path

from db import make_engine, upgrade
from db.monitoring import ensure_reference, model_versions
from worker.commands.common import settings_from


def cmd_drift(args: argparse.Namespace) -> int:
    from worker.service.monitor import recompute_drift

    settings = settings_from(args, ("db",))
    engine = make_engine(settings.db)
    upgrade(engine)
    versions = model_versions(engine)
    if not versions:
        print("no processed images yet: run `camwatch run` first")  # noqa: T201
        return 0
    for version_id, method, spec in versions:
        handle = ensure_reference(engine, settings.reference, version_id, method)
        if handle is None:
            print(f"{spec} ({method}): not enough images for the reference yet "  # noqa: T201
                  f"({settings.reference.kind})")
            continue
        written = recompute_drift(engine, settings, handle, version_id, full=True, by_results=True)
        print(f"{spec} ({method}): {written} drift results against reference {handle.id}")  # noqa: T201
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drift", help="(re)build the reference and recompute drift for every window")
    p.add_argument("--db")
    p.add_argument("--config", type=Path)
    p.set_defaults(func=cmd_drift)
