"""Queue sources end to end on the real brokers, with worker subprocesses: exactly once under SIGKILL, two
workers sharing one Redis consumer group, two workers sharing one MQTT subscription."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from camwatch.events import build_event, encode_event
from tests.support.brokers import (
    MQTT_HOST,
    MQTT_PORT,
    end_session,
    image_bytes,
    publish,
    redis_stream,
    unique,
)
from tests.support.workers import (
    db_counts,
    ok_count,
    processed_by_worker,
    run_once,
    spawn,
    tag_values,
    wait_for,
    worker_cmd,
)


def _events(start: int, n: int, prefix: str = "ev") -> list[bytes]:
    return [encode_event(build_event(data=image_bytes(i), content_type="image/png", event_id=f"{prefix}-{i}",
                                     tags={"camera": f"cam-{i % 3}"}, label="c1"))
            for i in range(start, start + n)]


def test_sigkill_three_times_mid_stream_every_event_recorded_once(tmp_path: Path) -> None:
    n = 120
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    with redis_stream() as s:
        for payload in _events(0, n // 2):
            s.add(payload)
        cmd = worker_cmd(url, s.url, spool=tmp_path / "spool", extra=("--max-in-flight", "12"))
        for kill, target in enumerate((10, 40, 75)):
            proc = spawn(cmd, tmp_path / f"run{kill}.log")
            try:
                wait_for(lambda t=target: ok_count(url) >= t, 180, f"{target} images done")
                if kill == 0:  # the rest of the stream arrives while the workers come and go
                    for payload in _events(n // 2, n // 2):
                        s.add(payload)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
            assert s.pending() > 0 or ok_count(url) < n  # killed with work in flight
        mid = db_counts(url)
        assert 0 < mid["ok"] < n, mid
        done = run_once(cmd)
        assert done.returncode == 0, done.stderr[-3000:]
        final = db_counts(url)
        assert {k: final[k] for k in ("images", "ok", "error", "heatmaps", "distinct_heatmaps", "events",
                                      "first_sightings")} == {
            "images": n, "ok": n, "error": 0, "heatmaps": n, "distinct_heatmaps": n, "events": n,
            "first_sightings": n}
        assert s.pending() == 0  # XPENDING empty: every entry acknowledged
        assert s.dead_letters() == []
        # entries in flight at a kill came back to the restarted consumer and were recorded as redeliveries
        assert 0 < final["redeliveries"] <= 3 * 12


def test_two_workers_on_one_consumer_group_share_the_stream_without_duplicates(tmp_path: Path) -> None:
    n = 160
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    with redis_stream() as s:
        cmd = worker_cmd(url, s.url, spool=tmp_path / "spool", extra=("--max-in-flight", "8"))
        procs = [spawn([*cmd, "--worker-id", f"w{i}"], tmp_path / f"w{i}.log") for i in range(2)]
        try:
            wait_for(lambda: len(s.client.xinfo_consumers(s.stream, s.group)) == 2 if s.client.exists(s.stream)
                     else False, 120, "both consumers in the group")
            for payload in _events(0, n):
                s.add(payload)
            wait_for(lambda: ok_count(url) >= n and s.pending() == 0, 240, "all images done and acknowledged")
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                assert proc.wait(60) == 0, (tmp_path / "w0.log").read_text()[-2000:]
        final = db_counts(url)
        assert (final["images"], final["ok"], final["distinct_heatmaps"], final["events"],
                final["redeliveries"]) == (n, n, n, n, 0)
        delivered = {c["name"].decode(): int(c["pending"]) for c in s.client.xinfo_consumers(s.stream, s.group)}
        assert set(delivered) == {"w0", "w1"} and sum(delivered.values()) == 0
        beats = processed_by_worker(url)
        assert set(beats) == {"w0", "w1"} and sum(beats.values()) == n and min(beats.values()) > 0


def test_mqtt_shared_subscription_spreads_events_over_two_workers_once_each(tmp_path: Path) -> None:
    n = 80
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    prefix, group = unique("cwtest"), unique("g")
    source = f"mqtt://{MQTT_HOST}:{MQTT_PORT}/{prefix}/images/#?group={group}"
    cmd = worker_cmd(url, source, spool=tmp_path / "spool", extra=("--max-in-flight", "8"))
    procs = [spawn([*cmd, "--worker-id", f"m{i}"], tmp_path / f"m{i}.log",
                   CAMWATCH_TOPIC_TAGS='["site", "camera"]') for i in range(2)]
    try:
        logs = [tmp_path / f"m{i}.log" for i in range(2)]
        wait_for(lambda: all("subscribed to" in log.read_text() for log in logs), 120, "both workers subscribed")
        for cam in range(2):
            publish(f"{prefix}/images/north/cam-{cam}", list(_events(cam * n // 2, n // 2)))
        wait_for(lambda: ok_count(url) >= n, 240, "all images done")
        time.sleep(1.0)  # the last acknowledgements go out on the next loop iteration
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
        for i in range(2):
            end_session(f"camwatch-{group}-m{i}")
    assert codes == [0, 0], (tmp_path / "m0.log").read_text()[-2000:]
    final = db_counts(url)
    assert (final["images"], final["ok"], final["distinct_heatmaps"], final["events"],
            final["redeliveries"]) == (n, n, n, n, 0)
    beats = processed_by_worker(url)
    assert sum(beats.values()) == n and min(beats.values()) > 0  # both workers took a share
    assert tag_values(url, "site") == ["north"] * n  # topic levels -> tags (topic_tags = ["site", "camera"])
    cameras = tag_values(url, "camera")  # ... and the event's own tag wins over the topic's
    assert {c: cameras.count(c) for c in set(cameras)} == {f"cam-{k}": len(range(k, n, 3)) for k in range(3)}
