"""Source and broker locations: the scheme of a ``--source`` location, and the two queue URLs that the
worker reads and the producer client writes (one parser for both sides).

* ``redis://[user:password@]host[:port][/db]?stream=NAME&group=NAME`` — a Redis stream (default stream
  ``camwatch.images``, group ``camwatch``); ``consumer=NAME`` fixes the consumer name (default: host and
  a per-host slot, see ``worker.sources.queue.slots``). Other query parameters are refused, so a typo is
  an error rather than a silent default.
* ``mqtt://[user:password@]host[:port]/TOPIC?group=NAME&client_id=ID`` — an MQTT 5 broker; ``TOPIC`` is
  a topic filter for a source (``camwatch/images/#``: ``#`` and ``+`` are taken literally, not as a URL
  fragment) and a plain topic for a producer. ``group`` names the shared subscription
  (``$share/<group>/<filter>``, default ``camwatch``).

Passwords never appear in logs: :func:`redact` replaces them with ``***``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

DEFAULT_STREAM = "camwatch.images"
DEFAULT_GROUP = "camwatch"
DEFAULT_REDIS_PORT = 6379
DEFAULT_MQTT_PORT = 1883
#: Suffix of the dead-letter stream of a Redis stream.
DEAD_LETTER_SUFFIX = ".dead"
#: Default bound of a Redis stream (``XADD ... MAXLEN ~``; setting ``queue.maxlen``).
DEFAULT_STREAM_MAXLEN = 10_000

_REDIS_PARAMS = frozenset({"stream", "group", "consumer"})
_MQTT_PARAMS = frozenset({"group", "client_id"})


def source_scheme(location: str) -> str:
    """The scheme of a source location: ``""`` for a plain path (Windows drive letters included)."""
    scheme = urlsplit(location).scheme
    return "" if len(scheme) <= 1 else scheme.lower()


def is_folder_location(location: str) -> bool:
    """True for a folder source: a plain path or ``file://``."""
    return source_scheme(location) in ("", "file")


def folder_path(location: str) -> Path | None:
    """The folder of a folder source (a path or ``file:///path``), None for other sources."""
    scheme = source_scheme(location)
    if scheme == "file":
        return Path(unquote(urlsplit(location).path))
    return Path(location) if scheme == "" else None


def redact(location: str) -> str:
    """``location`` with the password of its user info replaced by ``***`` (for logs and errors)."""
    parts = urlsplit(location)
    if parts.password is None:
        return location
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _query(query: str, allowed: frozenset[str], location: str) -> dict[str, str]:
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"{redact(location)}: unknown parameter(s) {unknown} (known: {sorted(allowed)})")
    for key, value in params.items():
        if not value:
            raise ValueError(f"{redact(location)}: parameter {key!r} is empty")
    return params


@dataclass(frozen=True)
class RedisLocation:
    """A parsed ``redis://`` location; :attr:`connection_url` is what ``redis.Redis.from_url`` takes."""

    connection_url: str
    stream: str
    group: str
    consumer: str | None
    display: str  # redacted, for logs

    @property
    def dead_letter_stream(self) -> str:
        return self.stream + DEAD_LETTER_SUFFIX


def parse_redis(location: str) -> RedisLocation:
    parts = urlsplit(location)
    if parts.scheme.lower() != "redis":
        raise ValueError(f"{redact(location)}: expected a redis:// URL")
    if not parts.hostname:
        raise ValueError(f"{redact(location)}: no host (expected redis://host:port/db?stream=...)")
    params = _query(parts.query, _REDIS_PARAMS, location)
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"{redact(location)}: the path must be a database number, got {path!r}")
    connection = parts._replace(path=f"/{path or 0}", query="", fragment="").geturl()
    stream = params.get("stream", DEFAULT_STREAM)
    if stream.endswith(DEAD_LETTER_SUFFIX):
        raise ValueError(f"{redact(location)}: stream {stream!r} is a dead-letter stream (ends with "
                         f"{DEAD_LETTER_SUFFIX!r}); read the stream it belongs to")
    return RedisLocation(connection_url=connection, stream=stream, group=params.get("group", DEFAULT_GROUP),
                         consumer=params.get("consumer"), display=redact(location))


@dataclass(frozen=True)
class MqttLocation:
    """A parsed ``mqtt://`` location (see the module docstring)."""

    host: str
    port: int
    username: str | None
    password: str | None
    topic: str  # a filter for sources, a topic for producers
    group: str
    client_id: str | None
    display: str

    @property
    def shared_filter(self) -> str:
        """The shared subscription of the source: ``$share/<group>/<topic filter>``."""
        return f"$share/{self.group}/{self.topic}"

    @property
    def fixed_levels(self) -> tuple[str, ...]:
        """The levels of the filter before its first wildcard (``camwatch/images/#`` -> camwatch, images)."""
        levels = self.topic.split("/")
        cut = next((i for i, level in enumerate(levels) if level in ("#", "+")), len(levels))
        return tuple(levels[:cut])


def parse_mqtt(location: str, *, producer: bool = False) -> MqttLocation:
    """Parse an ``mqtt://`` location; ``producer`` requires a plain topic (no wildcards) instead of a filter."""
    scheme, sep, rest = location.partition("://")
    if scheme.lower() != "mqtt" or not sep:
        raise ValueError(f"{redact(location)}: expected an mqtt:// URL")
    authority, _, remainder = rest.partition("/")
    topic_part, _, query = remainder.partition("?")  # '#' is a topic wildcard here, never a fragment
    netloc = urlsplit(f"mqtt://{authority}")
    if not netloc.hostname:
        raise ValueError(f"{redact(location)}: no host (expected mqtt://host:port/topic/filter/#)")
    topic = unquote(topic_part)
    if not topic:
        raise ValueError(f"{redact(location)}: no topic (expected mqtt://host:port/camwatch/images/#)")
    check_topic(topic, location, producer=producer)
    params = _query(query, _MQTT_PARAMS, location)
    group = params.get("group", DEFAULT_GROUP)
    if any(c in group for c in "/+#"):
        raise ValueError(f"{redact(location)}: group {group!r} must not contain '/', '+' or '#'")
    return MqttLocation(host=netloc.hostname, port=netloc.port or DEFAULT_MQTT_PORT,
                        username=unquote(netloc.username) if netloc.username else None,
                        password=unquote(netloc.password) if netloc.password else None, topic=topic,
                        group=group, client_id=params.get("client_id"), display=redact(location))


def check_topic(topic: str, location: str | None = None, *, producer: bool) -> None:
    """Refuse a malformed topic (``producer``: a plain topic) or filter, naming ``location`` (or the topic)."""
    location = location or topic
    levels = topic.split("/")
    if topic.startswith("$"):
        raise ValueError(f"{redact(location)}: topics starting with '$' are reserved (the shared subscription "
                         "prefix is added from the group parameter)")
    for i, level in enumerate(levels):
        if producer and ("#" in level or "+" in level):
            raise ValueError(f"{redact(location)}: a producer publishes to a topic, not a filter: {topic!r}")
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{redact(location)}: '#' must be the whole last level of the filter {topic!r}")
        if "+" in level and level != "+":
            raise ValueError(f"{redact(location)}: '+' must be a whole level of the filter {topic!r}")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT ``topic_filter`` (``+`` one level, ``#`` the rest)."""
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


def mqtt_url(host: str, port: int, topic: str, **params: str) -> str:
    """An ``mqtt://`` location for ``topic`` (levels quoted, wildcards kept)."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"mqtt://{host}:{port}/{quote(topic, safe='/#+')}" + (f"?{query}" if query else "")
