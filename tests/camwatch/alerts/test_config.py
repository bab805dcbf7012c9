"""The ``[alerts]`` and metrics settings through the one settings object: TOML, environment, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from camwatch.alerts.notifiers import configured_notifiers
from camwatch.settings import load_settings


def test_defaults_send_nothing_and_keep_metrics_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAMWATCH_CONFIG", str(tmp_path / "absent.toml"))
    s = load_settings()
    assert s.alerts.enabled and s.alerts.webhook_url is None and configured_notifiers(s.alerts) == []
    assert (s.metrics_port, s.metrics_host) == (None, "127.0.0.1")
    assert s.dashboard.base_url == "http://127.0.0.1:8501"


def test_environment_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "camwatch.toml"
    config.write_text('[alerts]\ncooldown_minutes = 15\n[alerts.smtp]\nhost = "mail"\nto = ["a@b.c"]\n'
                      'password = "pw-in-toml"\n[alerts.drift]\nconsecutive_windows = 2\n'
                      '[dashboard]\npublic_url = "https://cams.example.org/"\n')
    monkeypatch.setenv("CAMWATCH_ALERTS__WEBHOOK_URL", "https://hooks.example.org/T0KEN")
    monkeypatch.setenv("CAMWATCH_METRICS_PORT", "9464")
    s = load_settings(config)
    assert s.alerts.webhook_url is not None and s.alerts.webhook_url.get_secret_value().endswith("/T0KEN")
    assert s.alerts.cooldown_minutes == 15 and s.alerts.drift.consecutive_windows == 2
    assert s.metrics_port == 9464 and s.dashboard.base_url == "https://cams.example.org"
    assert [n.key for n in configured_notifiers(s.alerts)] == ["webhook", "email"]
    assert [n.where for n in configured_notifiers(s.alerts)] == ["https://hooks.example.org/…", "smtp://mail:25"]
    assert "T0KEN" not in repr(s) and "pw-in-toml" not in repr(s)
    assert load_settings(config, metrics_port=9000).metrics_port == 9000  # the flag wins
