"""One settings object: command-line flag → CAMWATCH_* environment variable → camwatch.toml → defaults."""

from __future__ import annotations

import datetime as dt

import pytest

from camwatch.settings import load_settings


def test_precedence_flag_env_toml_default(tmp_path, monkeypatch):
    toml = tmp_path / "camwatch.toml"
    toml.write_text('db = "sqlite:///from-toml.db"\nmethod = "layercam"\nbatch_size = 4\n'
                    '[flags]\nenergy_outside_max = 0.7\nborder_energy_max = 0.8\n')
    monkeypatch.delenv("CAMWATCH_DB", raising=False)
    monkeypatch.setenv("CAMWATCH_METHOD", "xgradcam")
    monkeypatch.setenv("CAMWATCH_FLAGS__BORDER_ENERGY_MAX", "0.9")
    s = load_settings(toml, batch_size=8)
    assert s.batch_size == 8  # flag beats the file
    assert s.method == "xgradcam" and s.flags.border_energy_max == 0.9  # environment beats the file
    assert s.db == "sqlite:///from-toml.db" and s.flags.energy_outside_max == 0.7  # file beats defaults
    assert s.topk == 5 and s.flags.low_confidence_min == 0.1  # defaults
    assert load_settings(toml, method=None).method == "xgradcam"  # an absent flag (None) does not override


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("CAMWATCH_DB", "CAMWATCH_METHOD", "CAMWATCH_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.db == "sqlite:///camwatch.db" and s.model == "efficientnet_lite0" and s.method == "gradcam"
    assert s.dashboard.host == "127.0.0.1"


def test_invalid_values_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml: configuration file not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match="batch_size"):
        load_settings(batch_size=0)


def test_reference_range_naive_times_are_utc():
    s = load_settings(reference={"kind": "time_range", "start": "2026-11-01T00:00:00", "end": "2026-11-02T06:00:00+02:00"})
    assert s.reference.start == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert s.reference.end == dt.datetime(2026, 11, 2, 4, tzinfo=dt.UTC)


def test_runtime_and_optimised_inference_settings(tmp_path, monkeypatch):
    toml = tmp_path / "camwatch.toml"
    toml.write_text('compile = true\nprecision = "bf16"\n[runtime]\nthreads = 4\nallocator = "default"\n')
    monkeypatch.setenv("CAMWATCH_RUNTIME__THREADS", "6")
    monkeypatch.setenv("CAMWATCH_CHANNELS_LAST", "true")
    s = load_settings(toml, runtime={"threads": 3})
    assert s.runtime.threads == 3  # --threads beats the environment
    assert s.runtime.allocator == "default"  # the file's, merged into the same table
    assert s.compile and s.channels_last and s.precision == "bf16"
    monkeypatch.chdir(tmp_path / "..")
    for var in ("CAMWATCH_RUNTIME__THREADS", "CAMWATCH_CHANNELS_LAST", "CAMWATCH_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    d = load_settings()
    assert (d.runtime.allocator, d.runtime.threads, d.runtime.trim_threshold_bytes) == ("pinned", None, 2**31 - 1)
    assert (d.channels_last, d.compile, d.precision) == (False, False, "fp32")
    with pytest.raises(ValueError, match="precision"):
        load_settings(precision="int8")
    with pytest.raises(ValueError, match="trim_threshold_bytes"):
        load_settings(runtime={"trim_threshold_bytes": 2**31})
