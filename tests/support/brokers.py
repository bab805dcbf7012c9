"""Test helpers for the queue sources, on the real local brokers: Redis 7 on 127.0.0.1:6379 and Mosquitto on
127.0.0.1:1883 (``CAMWATCH_TEST_REDIS`` / ``CAMWATCH_TEST_MQTT`` point elsewhere). Every test uses its own
stream, group and topic names, and removes them (streams, persistent MQTT sessions) afterwards; a spare
``redis-server`` on a free port can be stopped and started to play a broker that goes away.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import paho.mqtt.client as mqtt
import redis
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from PIL import Image

REDIS_URL = os.environ.get("CAMWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0")
MQTT_HOST, _, _port = os.environ.get("CAMWATCH_TEST_MQTT", "127.0.0.1:1883").partition(":")
MQTT_PORT = int(_port or 1883)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def image_bytes(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    """Distinct random image bytes (PNG by default)."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stream:
    """A throw-away Redis stream: ``url`` is the source location, ``client`` a connection for assertions."""

    client: redis.Redis
    stream: str
    group: str
    base: str = REDIS_URL

    @property
    def url(self) -> str:
        return f"{self.base}?stream={self.stream}&group={self.group}"

    @property
    def dead(self) -> str:
        return self.stream + ".dead"

    def add(self, payload: bytes | str | None, **fields: bytes | str) -> str:
        """XADD an entry whose ``event`` field is ``payload`` (none when None); returns the entry id."""
        values = dict(fields)
        if payload is not None:
            values["event"] = payload
        return self.client.xadd(self.stream, values).decode()

    def pending(self) -> int:
        """XPENDING count of the group (0 when the group does not exist)."""
        try:
            return int(self.client.xpending(self.stream, self.group)["pending"])
        except redis.ResponseError:
            return 0

    def dead_letters(self) -> list[dict[str, str]]:
        return [{k.decode(): v.decode(errors="replace") for k, v in fields.items()}
                for _, fields in self.client.xrange(self.dead)]


@contextmanager
def redis_stream(base: str = REDIS_URL) -> Iterator[Stream]:
    client = redis.Redis.from_url(base)
    stream = Stream(client, unique("cwtest"), unique("g"), base)
    try:
        yield stream
    finally:
        try:
            client.delete(stream.stream, stream.dead)
        finally:
            client.close()


class SpareRedis:
    """A ``redis-server`` of its own on a free port (no persistence): :meth:`stop` and :meth:`start` it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                                      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def spare_redis() -> Iterator[SpareRedis]:
    server = SpareRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mqtt_client(client_id: str = "") -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    return client


def publish(topic: str, payloads: list[bytes | str]) -> None:
    """Publish each payload with QoS 1 and wait for the broker's acknowledgements."""
    client = mqtt_client()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def end_session(client_id: str) -> None:
    """Remove a persistent MQTT session (connect with clean start and no expiry, disconnect)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(MQTT_HOST, MQTT_PORT, clean_start=True, properties=props)
    client.loop_start()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


@dataclass
class Collector:
    """Messages received on a topic filter (e.g. the dead-letter topic)."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    client: mqtt.Client | None = None

    def wait(self, n: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)


@contextmanager
def collect(topic_filter: str) -> Iterator[Collector]:
    found = Collector()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, msg: found.messages.append((msg.topic, bytes(msg.payload)))
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    client.subscribe(topic_filter, qos=1)
    subscribed.wait(5)
    found.client = client
    try:
        yield found
    finally:
        client.disconnect()
        client.loop_stop()


Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def http_server(routes: dict[str, Handler]) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 serving ``routes`` (path -> handler); yields ``host:port``."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?")[0])
            if route is None:
                self.send_error(404)
                return
            route(self)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def send_bytes(data: bytes, content_type: str = "image/png") -> Handler:
    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
    return handle
