"""The mqtt:// source in a worker (in-process, tiny model) against the real Mosquitto: topic tags, dead letters,
--once draining a persistent session, redelivery between commit and acknowledgement, and a broker (a spare
mosquitto of its own) that goes away and comes back."""

from __future__ import annotations

import getpass
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from camwatch.events import build_event, encode_event
from camwatch.settings import Settings, load_settings
from tests.support.brokers import (
    MQTT_HOST,
    MQTT_PORT,
    collect,
    end_session,
    free_port,
    image_bytes,
    port_open,
    publish,
    unique,
)
from tests.support.models import TINY_SPEC
from tests.support.workers import db_counts, tag_values, wait_for
from worker.service.worker import Worker
from worker.sources.queue.mqtt import MqttSource


def _settings(tmp_path: Path, source: str, **queue: object) -> Settings:
    return load_settings(db=f"sqlite:///{tmp_path / 'cw.db'}", source=[source], model=TINY_SPEC, poll_seconds=0.05,
                         batch_size=4, worker_id="mq", topic_tags=["site", "camera"],
                         queue={"spool_dir": str(tmp_path / "spool"), "drain_quiet_seconds": 0.5, **queue})


def _inline(event_id: str, seed: int, **kw: object) -> bytes:
    return encode_event(build_event(data=image_bytes(seed), content_type="image/png", event_id=event_id, **kw))


@contextmanager
def _topic(port: int = MQTT_PORT) -> Iterator[tuple[str, str, str]]:
    """``(prefix, group, source url)``; the persistent session of the worker 'mq' is removed afterwards."""
    prefix, group = unique("cwtest"), unique("g")
    try:
        yield prefix, group, f"mqtt://{MQTT_HOST}:{port}/{prefix}/images/#?group={group}"
    finally:
        end_session(f"camwatch-{group}-mq")


def _subscribe_once(settings: Settings) -> None:
    """Create the worker's persistent session and shared subscription (events published later wait there)."""
    worker = Worker(settings)
    worker.bootstrap()
    worker.close()


def test_topic_tags_dead_letters_and_draining_with_once(tmp_path: Path) -> None:
    with _topic() as (prefix, group, url):
        settings = _settings(tmp_path, url, dead_letter_topic=f"{prefix}/dead")
        _subscribe_once(settings)
        with collect(f"{prefix}/dead") as dead:
            publish(f"{prefix}/images/north/cam-2", [_inline("a", 1), _inline("b", 2, tags={"camera": "cam-9"}),
                                                    b"{broken", _inline("c", 3)])
            publish(f"{prefix}/images/south", [encode_event(build_event(uri="file:///etc/hostname", event_id="d"))])
            worker = Worker(settings)
            assert worker.work(burst=True) is True  # the session kept the messages while no worker ran
            letters = [json.loads(payload) for _, payload in dead.wait(2)]
    assert worker.processed == 3
    assert sorted((d["event_id"] or "", d["topic"]) for d in letters) == [
        ("", f"{prefix}/images/north/cam-2"), ("d", f"{prefix}/images/south")]
    reasons = {d["event_id"]: d["reason"] for d in letters}
    assert "malformed JSON" in reasons[None] and "outside the allowed roots" in reasons["d"]
    assert next(d for d in letters if d["event_id"] is None)["event"] == "{broken"
    assert tag_values(settings.db, "site") == ["north"] * 3
    assert tag_values(settings.db, "camera") == ["cam-2", "cam-2", "cam-9"]  # the event's own tag wins


def test_a_redelivery_between_commit_and_acknowledgement_is_a_duplicate_sighting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 5
    with _topic() as (prefix, _group, url):
        settings = _settings(tmp_path, url)
        _subscribe_once(settings)
        publish(f"{prefix}/images/x/y", [_inline(f"m{i}", i) for i in range(n)])
        with monkeypatch.context() as patch:  # commits, then "crashes" before any PUBACK
            patch.setattr(MqttSource, "_broker_ack", lambda self, keys: None)
            first = Worker(settings)
            first.work(burst=True)
        assert first.processed == n
        again = Worker(settings)  # resumes the session: the broker resends the unacknowledged messages
        again.work(burst=True)
        assert again.processed == 0
        third = Worker(settings)  # everything was acknowledged: nothing comes back
        third.work(burst=True)
    counts = db_counts(settings.db)
    assert (counts["images"], counts["ok"], counts["distinct_heatmaps"], counts["first_sightings"],
            counts["redeliveries"]) == (n, n, n, n, n)


def test_a_dead_letter_topic_inside_the_subscription_is_refused(tmp_path: Path) -> None:
    with _topic() as (prefix, _group, url):
        settings = _settings(tmp_path, url, dead_letter_topic=f"{prefix}/images/dead")
        with pytest.raises(ValueError, match="matches the subscription"):
            Worker(settings).bootstrap()


class _SpareMosquitto:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {folder}/\nuser {getpass.getuser()}\n")  # keeps the session
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)


def test_the_worker_reconnects_when_the_broker_goes_away_and_comes_back(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="worker.sources.queue")
    broker = _SpareMosquitto(tmp_path)
    broker.start()
    prefix, group = unique("cwtest"), unique("g")
    url = f"mqtt://127.0.0.1:{broker.port}/{prefix}/images/#?group={group}"
    settings = _settings(tmp_path, url, reconnect_max_seconds=1.0)
    wait_for(lambda: port_open(broker.port), 10, "the spare broker listening")
    worker = Worker(settings)
    thread = threading.Thread(target=worker.work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: "subscribed to" in caplog.text, 30, "the worker subscribed")
        target = f"mqtt://127.0.0.1:{broker.port}/{prefix}/images/a/b"
        _publish_to(target, [_inline(f"before-{i}", i) for i in range(4)])
        wait_for(lambda: worker.processed >= 4, 60, "first events done")
        broker.stop()
        wait_for(lambda: "broker unavailable" in caplog.text, 30, "the worker noticing")
        assert "broker reachable again" not in caplog.text  # no false recovery while the broker is down
        broker.start()
        wait_for(lambda: "subscribed again after reconnecting (session resumed)" in caplog.text, 60,
                 "the worker back in its session")
        wait_for(lambda: "broker reachable again" in caplog.text, 30, "the worker reconnected")
        _publish_to(target, [_inline(f"after-{i}", 10 + i) for i in range(4)])
        wait_for(lambda: worker.processed >= 8, 60, "events after the restart")
    finally:
        worker.request_stop()
        thread.join(30)
        broker.stop()
    assert worker.processed == 8 and db_counts(settings.db)["events"] == 8


def _publish_to(url: str, payloads: list[bytes]) -> None:
    from camwatch.client import Publisher

    with Publisher(url) as pub:
        for payload in payloads:
            pub.publish(json.loads(payload))
