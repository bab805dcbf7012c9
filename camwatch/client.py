"""The producer client: publish one ``camwatch.image.v1`` event per image to a Redis stream or an MQTT topic.

No torch, no database: an inference service publishes with one call::

    from camwatch.client import submit
    submit("/data/feed/cam-2/0001.jpg", to="redis://127.0.0.1:6379/0?stream=camwatch.images",
           tags={"site": "north", "camera": "cam-2"}, label="tabby", boxes=[(140, 20, 330, 300)],
           prediction={"class_index": 281, "score": 0.82})

or, for many images over one connection, ``with Publisher(to) as pub: pub.submit(...)``.

What is sent: bytes are inline (base64, capped like the worker's ``queue.max_inline_bytes``); a path is sent
as a ``file://`` reference (the worker must list its folder in ``allowed_roots``) unless ``inline=True``;
a ``file://`` or ``http(s)://`` string is sent as it is. The event is checked against the schema before it
leaves. Redis: ``XADD <stream> MAXLEN ~ <maxlen> * event <json>``; MQTT: QoS 1, never retained, to the
URL's topic (or ``topic=``), waiting for the broker's acknowledgement. ``redis`` and ``paho-mqtt`` are
imported only by the transport that needs them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from camwatch.events import DEFAULT_MAX_INLINE_BYTES, build_event, encode_event
from camwatch.locations import (
    DEFAULT_STREAM_MAXLEN,
    check_topic,
    parse_mqtt,
    parse_redis,
    redact,
    source_scheme,
)

_URI_SCHEMES = ("file", "http", "https")
# Magic numbers of the content types the format names (the schema's enum).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"),
)


def content_type_of(data: bytes) -> str | None:
    """The image content type of ``data`` by its magic number (None when not recognised)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)


class Publisher:
    """Publishes events to one location (``redis://...`` or ``mqtt://...``); a context manager."""

    def __init__(self, to: str, *, maxlen: int = DEFAULT_STREAM_MAXLEN,
                 max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES, timeout: float = 10.0) -> None:
        self.to = to
        self.maxlen = maxlen
        self.max_inline_bytes = max_inline_bytes
        self.timeout = timeout
        scheme = source_scheme(to)
        if scheme == "redis":
            self._transport: _Transport = _RedisTransport(to, maxlen, timeout)
        elif scheme == "mqtt":
            self._transport = _MqttTransport(to, timeout)
        else:
            raise ValueError(f"{redact(to)}: publish to redis://host:6379/0?stream=NAME or mqtt://host:1883/topic")

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def submit(self, image: str | Path | bytes, *, tags: Mapping[str, Any] | None = None, label: str | None = None,
               boxes: Sequence[Sequence[float]] | None = None, prediction: Mapping[str, Any] | None = None,
               model_version: str | None = None, time: dt.datetime | str | None = None,
               event_id: str | None = None, source: str | None = None, inline: bool | None = None,
               content_type: str | None = None, extra: Mapping[str, Any] | None = None,
               topic: str | None = None) -> str:
        """Publish one image's event (module docstring); returns the event id."""
        fields: dict[str, Any] = {"tags": tags, "label": label, "boxes": boxes, "prediction": prediction,
                                  "model_version": model_version, "time": time, "event_id": event_id,
                                  "source": source, "extra": extra, "max_inline_bytes": self.max_inline_bytes}
        if isinstance(image, bytes | bytearray):
            if inline is False:
                raise ValueError("image bytes can only be sent inline")
            data = bytes(image)
            doc = build_event(data=data, content_type=content_type or content_type_of(data), **fields)
        elif isinstance(image, str) and source_scheme(image) in _URI_SCHEMES and not inline:
            doc = build_event(uri=image, **fields)
        else:
            path = Path(image[len("file://"):] if isinstance(image, str) and image.startswith("file://") else image)
            path = path.expanduser().resolve()
            if not path.is_file():
                raise FileNotFoundError(f"{path}: image file not found")
            if inline:
                data = path.read_bytes()
                doc = build_event(data=data, content_type=content_type or content_type_of(data), **fields)
            else:
                doc = build_event(uri=path.as_uri(), **fields)
        self.publish(doc, topic=topic)
        return str(doc["id"])

    def publish(self, doc: Mapping[str, Any], *, topic: str | None = None) -> None:
        """Publish a prepared event document (from :func:`camwatch.events.build_event`)."""
        self._transport.send(encode_event(doc), topic)


class _Transport:
    def send(self, payload: bytes, topic: str | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _RedisTransport(_Transport):
    def __init__(self, to: str, maxlen: int, timeout: float) -> None:
        import redis

        self.where = parse_redis(to)
        self.maxlen = maxlen
        self.client = redis.Redis.from_url(self.where.connection_url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)

    def send(self, payload: bytes, topic: str | None) -> None:
        if topic is not None:
            raise ValueError("topic= is for MQTT; a Redis stream is named by ?stream= in the URL")
        self.client.xadd(self.where.stream, {"event": payload}, maxlen=self.maxlen, approximate=True)

    def close(self) -> None:
        self.client.close()


class _MqttTransport(_Transport):
    def __init__(self, to: str, timeout: float) -> None:
        import paho.mqtt.client as mqtt

        self.where = parse_mqtt(to, producer=True)
        self.timeout = timeout
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if self.where.username:
            self.client.username_pw_set(self.where.username, self.where.password)
        try:
            self.client.connect(self.where.host, self.where.port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"{self.where.display}: cannot connect ({exc})") from None
        self.client.loop_start()

    def send(self, payload: bytes, topic: str | None) -> None:
        if topic is not None:
            check_topic(topic, producer=True)
        info = self.client.publish(topic or self.where.topic, payload, qos=1, retain=False)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            raise ConnectionError(f"{self.where.display}: the broker did not acknowledge the event within "
                                  f"{self.timeout:g} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def submit(image: str | Path | bytes, *, to: str, **kwargs: Any) -> str:
    """Publish one image's event to ``to`` (one connection per call); returns the event id.

    Keyword arguments are those of :meth:`Publisher.submit` (tags, label, boxes, prediction, model_version,
    time, event_id, source, inline, content_type, extra, topic).
    """
    with Publisher(to) as publisher:
        return publisher.submit(image, **kwargs)
