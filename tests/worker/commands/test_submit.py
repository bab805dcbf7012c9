"""``camwatch submit``: one event per image on the real brokers, references or inline, annotations from the
options, failures reported per image."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.support.brokers import MQTT_HOST, MQTT_PORT, collect, image_bytes, redis_stream, unique
from worker.cli import main


def _stream_events(s: object) -> list[dict]:
    return [json.loads(f[b"event"]) for _, f in s.client.xrange(s.stream)]  # type: ignore[attr-defined]


def test_submit_publishes_references_with_the_options_and_reports_failures(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    images = [tmp_path / f"{i}.png" for i in range(2)]
    for i, path in enumerate(images):
        path.write_bytes(image_bytes(i))
    with redis_stream() as s:
        code = main(["submit", str(images[0]), str(tmp_path / "missing.png"), str(images[1]), "--to", s.url,
                     "--tags", "site=north", "camera=cam-2", "--label", "tabby", "--box", "1,2,30,40",
                     "--box", "5,5,9,9", "--prediction", "281:0.82", "--model-version", "m7",
                     "--time", "2026-11-30T08:15:00Z", "--extra", '{"request": "r-1"}'])
        docs = _stream_events(s)
    out = capsys.readouterr()
    assert code == 1  # one image failed; the others were sent
    assert "missing.png: image file not found" in out.err
    lines = [line.split("\t") for line in out.out.splitlines()]
    assert [name for name, _ in lines] == [str(images[0]), str(images[1])]
    assert [d["id"] for d in docs] == [event_id for _, event_id in lines]
    assert [d["image"] for d in docs] == [{"uri": p.resolve().as_uri()} for p in images]
    first = docs[0]
    assert (first["tags"], first["label"], first["boxes"], first["prediction"], first["model_version"],
            first["time"], first["request"]) == (
        {"site": "north", "camera": "cam-2"}, "tabby", [[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 9.0, 9.0]],
        {"class_index": 281, "score": 0.82}, "m7", "2026-11-30T08:15:00Z", "r-1")


def test_submit_inline_to_mqtt_with_an_id(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(image_bytes(3, fmt="JPEG"))
    prefix = unique("cwtest")
    with collect(f"{prefix}/#") as seen:
        code = main(["submit", str(path), "--inline", "--id", "req-1", "--prediction", "tabby",
                     "--to", f"mqtt://{MQTT_HOST}:{MQTT_PORT}/{prefix}/images/north/cam-2"])
        ((topic, payload),) = seen.wait(1)
    doc = json.loads(payload)
    assert code == 0 and capsys.readouterr().out == f"{path}\treq-1\n"
    assert topic == f"{prefix}/images/north/cam-2" and doc["id"] == "req-1"
    assert base64.b64decode(doc["image"]["data"]) == path.read_bytes() and doc["image"]["content_type"] == "image/jpeg"
    assert doc["prediction"] == {"label": "tabby"}


@pytest.mark.parametrize("images, args, message", [
    (1, ["--tags", "novalue"], "expected key=value"),
    (1, ["--box", "1,2,3"], "expected four numbers"),
    (2, ["--id", "x"], "--id names one event"),
    (1, ["--to", "mqtt://127.0.0.1/a/#"], "a producer publishes to a topic"),
])
def test_bad_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, images: int, args: list[str],
                                 message: str) -> None:
    paths = [str(tmp_path / f"{i}.png") for i in range(images)]
    for path in paths:
        Path(path).write_bytes(image_bytes(0))
    argv = ["submit", *paths, "--to", "redis://127.0.0.1:6379/0?stream=cwtest-unused", *args]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err
