"""Service commands (run, export, drift): registered on the CLI parser."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Placeholder until the service lands: registers nothing."""
