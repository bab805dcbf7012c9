"""Settings of the queue sources: locations kept as written, the [queue] table merged across the layers,
limits validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from camwatch.events import DEFAULT_MAX_INLINE_BYTES
from camwatch.locations import DEFAULT_STREAM_MAXLEN
from camwatch.settings import load_settings


def test_sources_keep_urls_as_written_and_paths_become_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMWATCH_SOURCE", raising=False)
    s = load_settings(source=[Path("/data/feed"), "redis://h:6379/0?stream=a&group=b", "mqtt://h/c/#"])
    assert s.source == ["/data/feed", "redis://h:6379/0?stream=a&group=b", "mqtt://h/c/#"]  # no '//' folded
    monkeypatch.setenv("CAMWATCH_SOURCE", '["mqtt://h:1883/x/#"]')
    assert load_settings().source == ["mqtt://h:1883/x/#"]


def test_queue_table_merges_flag_environment_file_and_defaults(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "camwatch.toml"
    toml.write_text('allowed_roots = ["/data/feed"]\ntopic_tags = ["site", "camera"]\n'
                    '[queue]\nspool_dir = "/var/spool/camwatch"\nmax_deliveries = 3\nmax_in_flight = 32\n')
    monkeypatch.setenv("CAMWATCH_QUEUE__MAX_IN_FLIGHT", "16")
    s = load_settings(toml, queue={"claim_timeout_seconds": 60})
    q = s.queue
    assert q.claim_timeout_seconds == 60 and q.max_in_flight == 16  # flag, then environment
    assert q.spool_dir == Path("/var/spool/camwatch") and q.max_deliveries == 3  # the file
    assert (q.max_inline_bytes, q.maxlen, q.spool_keep) == (DEFAULT_MAX_INLINE_BYTES, DEFAULT_STREAM_MAXLEN,
                                                            "flagged")  # defaults from their owners
    assert s.allowed_roots == [Path("/data/feed")] and s.topic_tags == ["site", "camera"]


@pytest.mark.parametrize("field, value", [("max_in_flight", 0), ("claim_timeout_seconds", 0),
                                          ("max_inline_bytes", 0), ("spool_keep", "some")])
def test_queue_limits_are_validated(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        load_settings(queue={field: value})
