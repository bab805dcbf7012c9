"""The source registry: every registered scheme opens from its location (a completeness test), and an unknown
scheme or an unreachable broker is a readable error at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from camwatch.settings import load_settings
from tests.support.brokers import MQTT_HOST, MQTT_PORT, end_session, free_port, redis_stream, unique
from worker.sources import SOURCES, QueueSource, open_source
from worker.sources.folder import FolderSource


def _location(scheme: str, tmp_path: Path, stream_url: str, topic: str) -> str:
    return {"": str(tmp_path), "file": tmp_path.as_uri(), "redis": stream_url,
            "mqtt": f"mqtt://{MQTT_HOST}:{MQTT_PORT}/{topic}/#?client_id={topic}"}[scheme]


CASES = {"": (FolderSource, None), "file": (FolderSource, None), "redis": (QueueSource, "redis:"),
         "mqtt": (QueueSource, "mqtt:")}


def test_every_registered_source_kind_has_a_case() -> None:
    assert set(CASES) == set(SOURCES)


@pytest.mark.parametrize("scheme", sorted(CASES))
def test_each_source_kind_opens_from_its_location(scheme: str, tmp_path: Path) -> None:
    settings = load_settings(source=[], use_events=False, queue={"spool_dir": str(tmp_path / "spool")})
    kind, prefix = CASES[scheme]
    topic = unique("cwtest")
    with redis_stream() as s:
        source = open_source(_location(scheme, tmp_path, s.url, topic), name=None, settings=settings)
        try:
            assert isinstance(source, kind) and source.poll() == []
            if prefix is not None:
                assert source.name.startswith(prefix) and source.root == (tmp_path / "spool").resolve()
        finally:
            source.close()
            if scheme == "mqtt":
                end_session(topic)


@pytest.mark.parametrize("location, message", [
    ("ftp://host/images", "unknown scheme 'ftp' (a folder path, or one of: file://, redis://, mqtt://)"),
    (f"redis://127.0.0.1:{free_port()}/0?stream=s", "cannot reach Redis"),
    (f"mqtt://127.0.0.1:{free_port()}/a/#", "cannot connect to the MQTT broker"),
    ("redis://u:hunter2@127.0.0.1:1/0?stream=s&typo=1", "unknown parameter(s) ['typo']"),
])
def test_bad_locations_fail_at_start_with_a_readable_reason(location: str, message: str, tmp_path: Path) -> None:
    settings = load_settings(source=[], queue={"spool_dir": str(tmp_path / "spool")})
    with pytest.raises(ValueError) as info:
        open_source(location, name=None, settings=settings)
    assert message in str(info.value) and "hunter2" not in str(info.value)
