"""The ``camwatch`` command (also ``python -m worker``): one subcommand per module of
:mod:`worker.commands`, each registering its parser with ``add_parser``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from db.faults import DatabaseUnavailable
from worker.commands import dashboard, drift, explain, export, hash_password, prune, reprocess, run, submit

COMMANDS = (run, explain, export, drift, prune, reprocess, dashboard, submit, hash_password)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="camwatch", description="camwatch: monitor where your classifier looks")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except DatabaseUnavailable as exc:
        # A database fault that retrying did not cure: the worker stopped cleanly.
        print(f"error: database unavailable: {exc}", file=sys.stderr)  # noqa: T201
        return 3
    except (ValueError, FileNotFoundError) as exc:
        # Configuration and input errors: one readable line, no traceback.
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
