"""The head and target options of the commands reach the settings (flag → setting, validated there)."""

from __future__ import annotations

import pytest

from worker.cli import build_parser
from worker.commands.common import MODEL_KEYS, settings_from
from worker.commands.run import RUN_KEYS


def test_run_options_for_head_and_target(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    args = build_parser().parse_args(["run", "--source", str(tmp_path), "--model", "hf:/models/ppe", "--head",
                                      "sigmoid", "--head-threshold", "0.7", "--target", "both"])
    s = settings_from(args, (*MODEL_KEYS, *RUN_KEYS))
    assert (s.model, s.head, s.head_threshold, s.target) == ("hf:/models/ppe", "sigmoid", 0.7, "both")


def test_explain_takes_the_head_but_keeps_its_own_target_class(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    args = build_parser().parse_args(["explain", "x.jpg", "--head", "binary", "--target", "1"])
    s = settings_from(args, MODEL_KEYS)
    assert s.head == "binary" and s.target == "top1" and args.target == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--target", "everything"])
    bad = build_parser().parse_args(["explain", "x.jpg", "--head-threshold", "1.5"])
    with pytest.raises(ValueError, match="head_threshold"):
        settings_from(bad, MODEL_KEYS)
