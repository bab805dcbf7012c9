"""``--model`` repeated on ``camwatch run``: shadow mode, the first model primary with the command line's files."""

from __future__ import annotations

from pathlib import Path

from camwatch.settings import Settings
from worker.cli import build_parser
from worker.commands.common import shadow_overrides


def test_model_repeated_on_the_command_line_is_shadow_mode() -> None:
    args = build_parser().parse_args(["run", "--source", "x", "--model", "a", "--weights", "a.pth",
                                      "--model", "b"])
    overrides = shadow_overrides(args)
    per_model = Settings(**{k: v for k, v in overrides.items() if v is not None}).model_settings()
    assert [(s.model, s.weights) for s in per_model] == [("a", Path("a.pth")), ("b", None)]
    single = shadow_overrides(build_parser().parse_args(["run", "--model", "a"]))
    assert single == {"model": "a", "models": []}  # one model on the command line: no [[models]]
