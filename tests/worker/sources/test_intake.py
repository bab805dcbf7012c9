"""From an event's image to a file: the content-addressed spool, file:// confined to the allowed roots,
http(s):// only from allowed hosts within size and time limits (a local server on 127.0.0.1)."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from camwatch.events import EventError, ImageEvent
from tests.support.brokers import free_port, http_server, image_bytes, send_bytes
from worker.sources.queue.intake import IntakeConfig, materialize

DATA = image_bytes(7)


def _config(tmp_path: Path, roots: list[Path] | None = None, hosts: list[str] | None = None,
            **limits: float) -> IntakeConfig:
    return IntakeConfig.create(tmp_path / "spool", roots or [], hosts or [], max_inline_bytes=int(limits.get(
        "inline", 1 << 20)), max_download_bytes=int(limits.get("download", 1 << 20)),
        download_timeout=limits.get("timeout", 5.0))


def _refused(event: ImageEvent, cfg: IntakeConfig) -> str:
    with pytest.raises(EventError) as info:
        materialize(event, cfg)
    assert info.value.event_id == event.id
    return info.value.reason


def test_inline_images_are_spooled_by_content_once(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    event = ImageEvent(id="e", data=base64.b64encode(DATA).decode(), content_type="image/png")
    first = materialize(event, cfg)
    digest = hashlib.sha256(DATA).hexdigest()
    assert first.path == cfg.spool / digest[:2] / f"{digest}.png" and first.path.read_bytes() == DATA
    assert (first.sha256, first.size_bytes, first.spooled) == (digest, len(DATA), True)
    os.utime(first.path, ns=(1, 1))
    again = materialize(ImageEvent(id="f", data=event.data, content_type="image/png"), cfg)
    assert again.path == first.path and again.path.stat().st_mtime_ns == 1  # already there: not rewritten
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]  # no temporary file left
    assert "above the cap of 10" in _refused(ImageEvent(id="g", data=event.data), _config(tmp_path, inline=10))


def test_file_uris_are_read_in_place_only_below_the_allowed_roots(tmp_path: Path) -> None:
    root, other = tmp_path / "feed", tmp_path / "feed-other"
    (root / "cam").mkdir(parents=True)
    other.mkdir()
    (root / "cam" / "a b.png").write_bytes(DATA)
    (other / "x.png").write_bytes(DATA)
    (root / "cam" / "escape.png").symlink_to(other / "x.png")
    cfg = _config(tmp_path, roots=[root])
    found = materialize(ImageEvent(id="e", uri=(root / "cam" / "a b.png").as_uri()), cfg)
    assert (found.path, found.sha256, found.spooled) == (root / "cam" / "a b.png", hashlib.sha256(DATA).hexdigest(),
                                                         False)
    outside = {
        "sibling": (other / "x.png").as_uri(),  # a string prefix check would let /feed-other through
        "dotdot": f"file://{root}/cam/../../feed-other/x.png",
        "absent outside": "file:///etc/camwatch-no-such-file.png",
        "existing outside": "file:///etc/hostname",
    }
    reasons = {k: _refused(ImageEvent(id="e", uri=u), cfg) for k, u in outside.items()}
    assert all("outside the allowed roots" in r for r in reasons.values()), reasons
    assert "not found" not in reasons["absent outside"]  # the refusal tells nothing about what exists there
    assert "resolves to" in _refused(ImageEvent(id="e", uri=(root / "cam" / "escape.png").as_uri()), cfg)
    assert "file not found" in _refused(ImageEvent(id="e", uri=(root / "cam" / "gone.png").as_uri()), cfg)
    assert "not a regular file" in _refused(ImageEvent(id="e", uri=(root / "cam").as_uri()), cfg)
    assert "only local files" in _refused(ImageEvent(id="e", uri=f"file://server{root}/cam/a.png"), cfg)
    assert "none configured" in _refused(ImageEvent(id="e", uri=(root / "cam" / "a b.png").as_uri()),
                                         _config(tmp_path))


def _drip(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.end_headers()
    for _ in range(40):
        req.wfile.write(b"x" * 10)
        req.wfile.flush()
        time.sleep(0.1)


def _chunked_big(req: BaseHTTPRequestHandler) -> None:
    req.send_response(200)
    req.end_headers()  # no Content-Length: the size is only known while reading
    req.wfile.write(b"y" * 10000)


def _redirect(to: str):  # type: ignore[no-untyped-def]
    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(302)
        req.send_header("Location", to)
        req.send_header("Content-Length", "0")
        req.end_headers()
    return handle


def test_http_images_come_only_from_allowed_hosts_within_the_limits(tmp_path: Path) -> None:
    port = free_port()
    routes = {"/a.png": send_bytes(DATA), "/big.png": send_bytes(b"z" * 10000), "/chunked": _chunked_big,
              "/slow": _drip, "/elsewhere": _redirect(f"http://localhost:{port}/a.png"),
              "/moved": _redirect("/a.png")}
    with http_server(routes) as host:
        cfg = _config(tmp_path, hosts=[host], download=8192, timeout=1.0)
        got = materialize(ImageEvent(id="e", uri=f"http://{host}/a.png?token=s3cret"), cfg)
        assert got.path.read_bytes() == DATA and got.spooled and got.path.suffix == ".png"
        assert materialize(ImageEvent(id="e", uri=f"http://{host}/moved"), cfg).sha256 == got.sha256
        reasons = {name: _refused(ImageEvent(id="e", uri=f"http://{host}{path}?token=s3cret"), cfg) for name, path in
                   (("404", "/missing.png"), ("big", "/big.png"), ("chunked", "/chunked"), ("slow", "/slow"),
                    ("redirect", "/elsewhere"))}
        not_allowed = _refused(ImageEvent(id="e", uri=f"http://localhost:{host.split(':')[1]}/a.png"), cfg)
        other_port = _refused(ImageEvent(id="e", uri=f"http://127.0.0.1:{port}/a.png"), cfg)
    assert "HTTP 404" in reasons["404"]
    assert "10000 bytes, above the limit of 8192" in reasons["big"]
    assert "more than 8192 bytes" in reasons["chunked"]
    assert "not received within 1 s" in reasons["slow"]
    assert "not an allowed host" in reasons["redirect"]
    assert "host not in allowed_hosts" in not_allowed and "host not in allowed_hosts" in other_port
    assert all("s3cret" not in r for r in reasons.values())  # query strings (signed URLs) never shown
    unreachable = _config(tmp_path, hosts=[f"127.0.0.1:{port}"])
    assert "cannot fetch" in _refused(ImageEvent(id="e", uri=f"http://127.0.0.1:{port}/a.png"), unreachable)
