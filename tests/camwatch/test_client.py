"""The producer client on the real brokers: what an event carries for bytes, paths and URIs, the stream bound,
MQTT QoS 1 without retain; and that it needs neither torch nor the database."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from camwatch.client import Publisher, content_type_of, submit
from camwatch.events import parse_event
from tests.support import REPO
from tests.support.brokers import MQTT_HOST, MQTT_PORT, collect, image_bytes, redis_stream, unique


def _events(stream: object) -> list[dict]:
    return [json.loads(fields[b"event"]) for _, fields in stream.client.xrange(stream.stream)]  # type: ignore[attr-defined]


def test_submit_bytes_inline_with_annotations_to_a_redis_stream() -> None:
    data = image_bytes(1)
    with redis_stream() as s:
        event_id = submit(data, to=s.url, tags={"site": "north"}, label="tabby", boxes=[(1, 2, 30, 40)],
                          prediction={"class_index": 281, "score": 0.82}, model_version="m-7",
                          time="2026-11-30T08:15:00Z", source="svc/a")
        (doc,) = _events(s)
    assert doc["id"] == event_id and doc["specversion"] == "camwatch.image.v1"
    assert base64.b64decode(doc["image"]["data"]) == data and doc["image"]["content_type"] == "image/png"
    assert (doc["tags"], doc["label"], doc["boxes"], doc["prediction"], doc["model_version"], doc["source"]) == (
        {"site": "north"}, "tabby", [[1, 2, 30, 40]], {"class_index": 281, "score": 0.82}, "m-7", "svc/a")
    parse_event(json.dumps(doc))  # what the worker reads


def test_paths_go_as_file_references_unless_inline_and_uris_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "a b.jpg"
    path.write_bytes(image_bytes(2, fmt="JPEG"))
    with redis_stream() as s, Publisher(s.url) as pub:
        pub.submit(path)
        pub.submit(str(path), inline=True)
        pub.submit("https://images.example/x.jpg?sig=1")
        docs = _events(s)
    assert docs[0]["image"] == {"uri": path.resolve().as_uri()} and "%20" in docs[0]["image"]["uri"]
    assert base64.b64decode(docs[1]["image"]["data"]) == path.read_bytes()
    assert docs[1]["image"]["content_type"] == "image/jpeg"
    assert docs[2]["image"] == {"uri": "https://images.example/x.jpg?sig=1"}


def test_the_stream_is_bounded_with_maxlen() -> None:
    with redis_stream() as s, Publisher(s.url, maxlen=10) as pub:
        for i in range(400):
            pub.submit(b"\xff\xd8\xff" + i.to_bytes(4, "big"), event_id=f"e{i}")
        length = s.client.xlen(s.stream)
    assert 10 <= length < 400  # MAXLEN ~ trims whole macro nodes: about 10, never the 400 sent


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    with redis_stream() as s, Publisher(s.url, max_inline_bytes=100) as pub:
        with pytest.raises(FileNotFoundError, match="image file not found"):
            pub.submit(tmp_path / "missing.jpg")
        with pytest.raises(ValueError, match="above the cap of 100"):
            pub.submit(b"x" * 101)
        with pytest.raises(ValueError, match="topic= is for MQTT"):
            pub.submit(b"x", topic="a/b")
        assert s.client.xlen(s.stream) == 0
    with pytest.raises(ValueError, match="publish to redis"):
        Publisher("/tmp/folder")


def test_mqtt_events_are_qos1_not_retained_on_the_url_topic_or_a_given_one() -> None:
    prefix = unique("cwtest")
    with collect(f"{prefix}/#") as seen:
        with Publisher(f"mqtt://{MQTT_HOST}:{MQTT_PORT}/{prefix}/images/north/cam-2") as pub:
            first = pub.submit(b"\x89PNG\r\n\x1a\n1234", label="cat")
            second = pub.submit(b"\x89PNG\r\n\x1a\n5678", topic=f"{prefix}/images/south/cam-1")
        messages = seen.wait(2)
    assert [(t, json.loads(p)["id"]) for t, p in messages] == [(f"{prefix}/images/north/cam-2", first),
                                                               (f"{prefix}/images/south/cam-1", second)]
    with collect(f"{prefix}/#") as late:  # nothing retained: a later subscriber gets nothing
        assert late.wait(1, timeout=1.0) == []


def test_content_types_by_magic_number() -> None:
    assert [content_type_of(image_bytes(0, fmt=f)) for f in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")] == [
        "image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff", "image/webp"]
    assert content_type_of(b"%PDF-1.7") is None


def test_the_client_imports_neither_torch_nor_the_database() -> None:
    code = ("import sys, camwatch.client\n"
            "print(sorted(m for m in ('torch', 'sqlalchemy', 'db', 'worker', 'redis', 'paho') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # broker libraries load only when a transport needs them
