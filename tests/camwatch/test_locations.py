"""Source and broker locations: schemes, the redis:// and mqtt:// URLs, topic filters, redacted passwords."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from camwatch.locations import (
    check_topic,
    folder_path,
    mqtt_url,
    parse_mqtt,
    parse_redis,
    redact,
    source_scheme,
    topic_matches,
)


@pytest.mark.parametrize("location, scheme, folder", [
    ("/data/feed", "", Path("/data/feed")), ("C:\\feed", "", Path("C:\\feed")),
    ("file:///data/my%20feed", "file", Path("/data/my feed")), ("REDIS://h/0", "redis", None),
    ("mqtt://h/a/#", "mqtt", None),
])
def test_scheme_and_folder_of_a_location(location: str, scheme: str, folder: Path | None) -> None:
    assert source_scheme(location) == scheme and folder_path(location) == folder


def test_redis_url_defaults_and_parameters() -> None:
    plain = parse_redis("redis://127.0.0.1")
    assert (plain.connection_url, plain.stream, plain.group, plain.consumer) == (
        "redis://127.0.0.1/0", "camwatch.images", "camwatch", None)
    full = parse_redis("redis://u:s3cret@h:6380/2?stream=a.b&group=g1&consumer=c7")
    assert (full.connection_url, full.stream, full.group, full.consumer, full.dead_letter_stream) == (
        "redis://u:s3cret@h:6380/2", "a.b", "g1", "c7", "a.b.dead")
    assert "s3cret" not in full.display and "u:***@h:6380" in full.display


@pytest.mark.parametrize("url, message", [
    ("redis://h/0?stream=s&gruop=g", "unknown parameter(s) ['gruop']"),
    ("redis://h/0?stream=", "parameter 'stream' is empty"),
    ("redis://h/abc", "must be a database number"),
    ("redis:///0", "no host"),
    ("redis://h/0?stream=x.dead", "is a dead-letter stream"),
    ("redis://u:topsecret@h/0?bad=1", "u:***@h"),
])
def test_bad_redis_urls_are_refused_and_never_show_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_redis(url)
    assert message in str(info.value) and "topsecret" not in str(info.value)


def test_mqtt_url_keeps_wildcards_as_topic_levels_not_a_fragment() -> None:
    where = parse_mqtt("mqtt://user:pw@127.0.0.1:1884/camwatch/images/#?group=g2&client_id=cw-1")
    assert (where.host, where.port, where.username, where.password, where.topic, where.group, where.client_id) == (
        "127.0.0.1", 1884, "user", "pw", "camwatch/images/#", "g2", "cw-1")
    assert where.shared_filter == "$share/g2/camwatch/images/#"
    assert where.fixed_levels == ("camwatch", "images")
    assert parse_mqtt("mqtt://h/a/+/c/#").fixed_levels == ("a",)
    assert parse_mqtt("mqtt://h/a/b").port == 1883 and parse_mqtt("mqtt://h/a/b").group == "camwatch"
    assert parse_mqtt(mqtt_url("h", 1, "a b/#", group="g")).topic == "a b/#"


@pytest.mark.parametrize("url, producer, message", [
    ("mqtt://h/a/#", True, "a producer publishes to a topic"),
    ("mqtt://h/a/#/b", False, "'#' must be the whole last level"),
    ("mqtt://h/a/b+", False, "'+' must be a whole level"),
    ("mqtt://h/$share/g/a", False, "reserved"),
    ("mqtt://h/", False, "no topic"),
    ("mqtt://h/a?group=x/y", False, "must not contain"),
    ("mqtt://h/a?qos=2", False, "unknown parameter(s) ['qos']"),
])
def test_bad_mqtt_urls_are_refused(url: str, producer: bool, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_mqtt(url, producer=producer)


@pytest.mark.parametrize("topic_filter, topic, matches", [
    ("camwatch/images/#", "camwatch/images/north/cam-2", True), ("camwatch/images/#", "camwatch/images", True),
    ("camwatch/images/#", "camwatch/dead", False), ("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False),
    ("a/+", "a/b/c", False), ("a/b", "a/b", True), ("#", "anything/at/all", True),
])
def test_topic_filter_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_check_topic_and_redact_without_password() -> None:
    check_topic("camwatch/images/north", producer=True)
    with pytest.raises(ValueError, match="not a filter"):
        check_topic("camwatch/+/north", producer=True)
    assert redact("redis://h:6379/0?stream=s") == "redis://h:6379/0?stream=s"
