"""The redis:// source in a worker (in-process, tiny model) against the real Redis: bad events dead-lettered with
their reason, delivery counts and take-over of idle entries, redelivery between commit and acknowledgement,
backpressure, the spool, a folder and a stream in one worker, a broker that goes away and comes back."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from pathlib import Path

import pytest
import redis

from camwatch.events import build_event, encode_event
from camwatch.settings import Settings, load_settings
from db import make_engine
from db.queue_status import queue_backlog
from tests.support.brokers import (
    Stream,
    free_port,
    http_server,
    image_bytes,
    redis_stream,
    send_bytes,
    spare_redis,
)
from tests.support.models import TINY_SPEC
from tests.support.workers import (
    db_counts,
    duplicate_sightings,
    error_reasons,
    flagged_uris,
    image_uris,
    wait_for,
)
from worker.service.worker import Worker
from worker.sources import open_source
from worker.sources.queue.redis_streams import RedisStreamSource


def _settings(tmp_path: Path, *sources: str | Path, **kw: object) -> Settings:
    queue = {"spool_dir": str(tmp_path / "spool"), **kw.pop("queue", {})}  # type: ignore[dict-item]
    return load_settings(db=f"sqlite:///{tmp_path / 'cw.db'}", source=list(sources), model=TINY_SPEC,
                         poll_seconds=0.05, batch_size=4, stable_seconds=0.05, queue=queue, **kw)


def _inline(event_id: str, seed: int, **kw: object) -> bytes:
    return encode_event(build_event(data=image_bytes(seed), content_type="image/png", event_id=event_id, **kw))


def test_bad_events_are_dead_lettered_with_their_reason_and_the_worker_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "feed"
    root.mkdir()
    (root / "ok.png").write_bytes(image_bytes(2))
    (tmp_path / "outside.png").write_bytes(image_bytes(3))
    closed = free_port()
    with redis_stream() as s, http_server({"/h.png": send_bytes(image_bytes(4))}) as host:
        good = {"inline": _inline("good-inline", 1), "file": encode_event(build_event(
            uri=(root / "ok.png").as_uri(), event_id="good-file")), "http": encode_event(build_event(
                uri=f"http://{host}/h.png", event_id="good-http"))}
        bad = {
            "no-json": b'{"specversion": "camwatch.image.v1", "id": "no-json", ',
            "schema": b'{"specversion": "camwatch.image.v1", "id": "schema", "image": {"url": "x"}}',
            "base64": json.dumps({"specversion": "camwatch.image.v1", "id": "base64",
                                  "image": {"data": "not*base64"}}).encode(),
            "too-big": encode_event(build_event(data=image_bytes(5, size=(96, 80)), event_id="too-big")),
            "outside": encode_event(build_event(uri=(tmp_path / "outside.png").as_uri(), event_id="outside")),
            "missing": encode_event(build_event(uri=(root / "gone.png").as_uri(), event_id="missing")),
            "unreachable": encode_event(build_event(uri=f"http://127.0.0.1:{closed}/x.png", event_id="unreachable")),
            "host": encode_event(build_event(uri="http://images.example/x.png", event_id="host")),
        }
        not_image = encode_event(build_event(data=b"just some text, no picture", event_id="not-image"))
        for payload in [*good.values(), *bad.values(), not_image]:
            s.add(payload)
        s.add(None, other="field")
        settings = _settings(tmp_path, s.url, allowed_roots=[root],
                             allowed_hosts=[host, f"127.0.0.1:{closed}"],
                             queue={"max_inline_bytes": len(image_bytes(1)) + 10})
        big = len(base64.b64decode(json.loads(bad["too-big"])["image"]["data"]))
        assert big > settings.queue.max_inline_bytes
        worker = Worker(settings)
        assert worker.work(burst=True) is True
        letters = {d.get("event_id", d["entry"]): d for d in s.dead_letters()}
        assert s.pending() == 0  # every entry acknowledged: processed, failed or dead-lettered
        url = settings.db
    expected = {"no-json": "malformed JSON", "schema": "image: must hold exactly one of",
                "base64": "not valid base64", "too-big": f"inline image is {big} bytes, above the cap",
                "outside": "outside the allowed roots", "missing": "file not found",
                "unreachable": "cannot fetch", "host": "host not in allowed_hosts"}
    no_field = [d for d in letters.values() if "event" not in d]
    assert len(no_field) == 1 and no_field[0]["reason"] == "entry has no 'event' field (fields: ['other'])"
    for key, reason in expected.items():
        letter = letters.get(key) or next(d for d in letters.values() if d.get("event") == bad[key].decode())
        assert reason in letter["reason"], (key, letter["reason"])
        assert letter["stream"] == s.stream and letter["group"] == s.group and letter["deliveries"] == "1"
        assert letter["event"] == bad[key].decode()  # the original, so it can be replayed once fixed
    counts = db_counts(url)
    assert (counts["ok"], counts["error"], counts["events"]) == (3, 1, 4)
    assert "not an allowed image format (detected: text)" in error_reasons(url)["not-image"]
    (status,) = queue_backlog(make_engine(url)).itertuples()
    assert (status.state, status.received, status.dead_lettered, status.acknowledged, status.dead_letters) == (
        "stopped", 13, 9, 4, 9)


def test_entries_delivered_too_often_are_dead_lettered_and_idle_ones_are_taken_over(tmp_path: Path) -> None:
    with redis_stream() as s:
        s.client.xgroup_create(s.stream, s.group, id="0", mkstream=True)
        poison, abandoned = s.add(_inline("poison", 1)), s.add(_inline("abandoned", 2))
        s.client.xreadgroup(s.group, "ghost", {s.stream: ">"})  # a consumer that died holding both
        s.client.xclaim(s.stream, s.group, "ghost", 0, [poison], retrycount=5)  # delivered 5 times already
        time.sleep(0.3)
        settings = _settings(tmp_path, s.url, queue={"claim_timeout_seconds": 0.2, "max_deliveries": 5})
        Worker(settings).work(burst=True)
        (letter,) = s.dead_letters()
        assert (letter["entry"], letter["deliveries"]) == (poison, "6")
        assert "delivered 6 times (queue.max_deliveries 5)" in letter["reason"]
        assert s.pending() == 0 and db_counts(settings.db)["ok"] == 1  # 'abandoned' done by the new consumer
        assert abandoned != poison


def test_a_redelivery_between_commit_and_acknowledgement_is_a_duplicate_sighting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 6
    with redis_stream() as s:
        for i in range(n):
            s.add(_inline(f"r{i}", i))
        settings = _settings(tmp_path, s.url)
        with monkeypatch.context() as patch:  # the worker "crashes" after each commit, before its XACK
            patch.setattr(RedisStreamSource, "_broker_ack", lambda self, keys: None)
            Worker(settings).work(burst=True)
        assert s.pending() == n and db_counts(settings.db)["ok"] == n
        again = Worker(settings)  # same host slot: same consumer name, so it re-reads its pending entries
        again.work(burst=True)
        assert s.pending() == 0 and again.processed == 0
    counts = db_counts(settings.db)
    assert (counts["images"], counts["ok"], counts["distinct_heatmaps"], counts["first_sightings"],
            counts["redeliveries"]) == (n, n, n, n, n)


def test_backpressure_bounds_the_events_in_flight(tmp_path: Path) -> None:
    with redis_stream() as s:
        for i in range(30):
            s.add(_inline(f"b{i}", i))
        worker = Worker(_settings(tmp_path, s.url, queue={"max_in_flight": 5}))
        worker.bootstrap()
        (source,) = worker.sources
        assert isinstance(source, RedisStreamSource)
        peak = 0
        try:
            for _ in range(200):
                worker.scan()
                peak = max(peak, len(source.in_flight), s.pending())
                if not worker.process_once() and not source.in_flight and source.waiting == 0:
                    break
            assert s.client.xinfo_groups(s.stream)[0]["lag"] == 0
        finally:
            worker.close()
        assert peak == 5 and s.pending() == 0 and worker.processed == 30


@pytest.mark.parametrize("keep", ["all", "flagged", "none"])
def test_spooled_images_are_removed_after_their_result_unless_kept(tmp_path: Path, keep: str) -> None:
    with redis_stream() as s:
        for i in range(12):  # a box in a corner: the attention is outside it, flagged 'energy_outside'
            s.add(_inline(f"k{i}", i, boxes=[(0, 0, 2, 2)] if i % 2 else None))
        settings = _settings(tmp_path, s.url, queue={"spool_keep": keep})
        Worker(settings).work(burst=True)
    flagged = flagged_uris(settings.db)
    kept = {str(p) for p in (tmp_path / "spool").glob("*/*.png")}
    assert kept == {"all": set(image_uris(settings.db)), "flagged": flagged, "none": set()}[keep]
    assert len(image_uris(settings.db)) == 12 and len(flagged) >= 6


def test_one_worker_reads_a_folder_and_a_stream_and_same_bytes_count_once(tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    for i in range(3):
        (feed / f"f{i}.png").write_bytes(image_bytes(100 + i))
    with redis_stream() as s:
        for i in range(3):
            s.add(_inline(f"q{i}", 200 + i))
        s.add(_inline("same-as-folder", 100))
        settings = _settings(tmp_path, feed, s.url)
        Worker(settings).work(burst=True)
        assert s.pending() == 0
    counts = db_counts(settings.db)
    assert (counts["images"], counts["ok"], counts["events"]) == (6, 6, 4)
    assert duplicate_sightings(settings.db) == 1  # the folder file or the event, whichever was registered second


def test_the_worker_reconnects_when_redis_goes_away_and_comes_back(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="worker.sources.queue")
    with spare_redis() as server:
        stream = Stream(redis.Redis.from_url(server.url), "cwtest-restart", "g", server.url)
        settings = _settings(tmp_path, stream.url, queue={"reconnect_max_seconds": 1.0})
        for i in range(5):
            stream.add(_inline(f"before-{i}", i))
        worker = Worker(settings)
        thread = threading.Thread(target=worker.work, daemon=True)
        thread.start()
        try:
            wait_for(lambda: worker.processed >= 5 and stream.pending() == 0, 60, "first events done")
            server.stop()  # the broker goes away (no persistence: the stream and group are lost with it)
            wait_for(lambda: "broker unavailable" in caplog.text, 30, "the worker noticing")
            server.start()
            stream.client = redis.Redis.from_url(server.url)
            for i in range(5):
                stream.add(_inline(f"after-{i}", 10 + i))
            wait_for(lambda: worker.processed >= 10 and stream.pending() == 0, 60, "events after the restart")
        finally:
            worker.request_stop()
            thread.join(30)
    assert "broker reachable again" in caplog.text and worker.processed == 10
    assert db_counts(settings.db)["events"] == 10


def test_trimming_removes_only_entries_every_group_acknowledged(tmp_path: Path) -> None:
    with redis_stream() as s:
        ids = [s.add(_inline(f"t{i}", i)) for i in range(40)]
        s.client.xgroup_create(s.stream, "other-reader", id="0")  # another application's group, behind
        settings = _settings(tmp_path, s.url)
        Worker(settings).work(burst=True)
        assert s.pending() == 0
        source = open_source(s.url, name=None, settings=settings)
        assert isinstance(source, RedisStreamSource)
        try:
            assert source.trim_acknowledged() == 0 and s.client.xlen(s.stream) == 40  # the other group needs all
            s.client.xreadgroup("other-reader", "c", {s.stream: ">"}, count=15)
            s.client.xack(s.stream, "other-reader", *ids[:10])  # 10 acknowledged, 5 still pending there
            source.trim_acknowledged()
            left = [i.decode() for i, _ in s.client.xrange(s.stream)]
            assert set(ids[10:]) <= set(left)  # nothing that some group still needs is gone
            s.client.xgroup_destroy(s.stream, "other-reader")
            source.trim_acknowledged()
            assert s.client.xlen(s.stream) < 40  # every entry acknowledged by the only group: trimmed (MINID ~)
        finally:
            source.close()
