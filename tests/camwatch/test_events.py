"""The camwatch.image.v1 event format: the shipped JSON Schema, reading events, the reasons for refusing them
(never quoting the event's content), inline images and their cap, and writing events."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest
from jsonschema import Draft202012Validator

from camwatch.events import (
    CONTENT_TYPE_SUFFIXES,
    DEFAULT_MAX_INLINE_BYTES,
    SPECVERSION,
    EventError,
    build_event,
    decode_inline,
    encode_event,
    max_event_bytes,
    parse_event,
    schema,
)
from tests.support import REPO

EXAMPLE = {"specversion": "camwatch.image.v1", "id": "req-8f1c", "source": "site-north/cam-2",
           "time": "2026-11-30T08:15:00Z", "image": {"uri": "file:///data/feed/cam-2/0001.jpg"},
           "tags": {"site": "north", "camera": "cam-2"}, "label": "tabby", "boxes": [[140, 20, 330, 300]],
           "model_version": "classifier-2026-11", "prediction": {"class_index": 281, "score": 0.82}}


def _with(**changes: object) -> bytes:
    doc = {**EXAMPLE, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def test_the_schema_ships_in_the_package_and_is_a_valid_draft_2020_12_schema() -> None:
    assert (REPO / "camwatch" / "events" / "image.v1.schema.json").is_file()
    Draft202012Validator.check_schema(schema())
    assert schema()["properties"]["specversion"]["const"] == SPECVERSION == "camwatch.image.v1"
    content_types = schema()["properties"]["image"]["oneOf"][1]["properties"]["content_type"]["enum"]
    assert sorted(content_types) == sorted(CONTENT_TYPE_SUFFIXES)  # one suffix per content type the format names


def test_the_issue_example_reads_with_every_field() -> None:
    event = parse_event(json.dumps(EXAMPLE))
    assert (event.id, event.uri, event.data, event.source) == ("req-8f1c", "file:///data/feed/cam-2/0001.jpg", None,
                                                               "site-north/cam-2")
    assert event.time == dt.datetime(2026, 11, 30, 8, 15, tzinfo=dt.UTC)
    assert event.tags == {"site": "north", "camera": "cam-2"} and event.label == "tabby"
    assert event.boxes == ((140.0, 20.0, 330.0, 300.0),)
    assert event.model_version == "classifier-2026-11" and event.prediction == {"class_index": 281, "score": 0.82}
    assert event.extra == {}


def test_unknown_fields_are_kept_never_an_error() -> None:
    event = parse_event(_with(request={"path": "/predict", "latency_ms": 12}, shard=3))
    assert event.extra == {"request": {"path": "/predict", "latency_ms": 12}, "shard": 3}
    meta = event.metadata()
    assert meta["extra"] == event.extra and meta["id"] == "req-8f1c" and meta["image"] == {"uri": EXAMPLE["image"]["uri"]}


def test_unknown_fields_above_the_size_limit_are_dropped_with_a_note() -> None:
    event = parse_event(_with(blob="x" * (70 << 10)))
    assert set(event.metadata()["extra"]) == {"_dropped"} and "bytes of unknown fields" in event.metadata()["extra"]["_dropped"]


def test_a_time_without_zone_is_utc_and_other_zones_are_converted() -> None:
    assert parse_event(_with(time="2026-11-30T08:15:00")).time == dt.datetime(2026, 11, 30, 8, 15, tzinfo=dt.UTC)
    assert parse_event(_with(time="2026-11-30T09:15:00+01:00")).time == dt.datetime(2026, 11, 30, 8, 15, tzinfo=dt.UTC)


SECRET = "c2VjcmV0LWJ5dGVz"  # base64 of content that must never appear in a reason


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "malformed JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'["a list"]', "expected a JSON object, got array"),
    (_with(specversion="camwatch.image.v2"), "specversion: must be 'camwatch.image.v1'"),
    (_with(id=None), "missing required field(s) ['id']"),
    (_with(id=""), "id: shorter than 1 characters"),
    (_with(image={"uri": "file:///a.jpg", "data": SECRET}), "image: must hold exactly one of"),
    (_with(image={}), "image: must hold exactly one of"),
    (_with(image={"uri": "ftp://host/a.jpg"}), "image: must hold exactly one of"),
    (_with(image={"data": SECRET, "content_type": "text/html"}), "image: must hold exactly one of"),
    (_with(tags={"a=b": "x"}), "tags: keys must be 1 to 100 characters without '='"),
    (_with(tags={"site": ["north"]}), "tags/site: fails the schema rule 'anyOf'"),
    (_with(boxes=[[1, 2, 3]]), "boxes/0: fewer than 4 items"),
    (_with(boxes=[[10, 20, 5, 30]]), "boxes/0: expected [x0, y0, x1, y1] with x1 > x0 and y1 > y0"),
    (_with(boxes=[[1, 2, True, 4]]), "boxes/0/2: expected number, got boolean"),
    (_with(label=7), "label: expected string, got integer"),
    (_with(prediction={"score": 0.3}), "prediction: needs class_index or label"),
    (_with(prediction={"class_index": 1, "score": 1.5}), "prediction/score: above the maximum 1"),
    (_with(time="the day before yesterday"), "time: not an ISO 8601 date-time"),
    (b'{"specversion": "camwatch.image.v1", "id": "x", "image": {"uri": "file:///a"}, "boxes": [[0, 0, NaN, 1]]}',
     "malformed JSON (NaN is not valid JSON)"),
])
def test_invalid_events_are_refused_with_a_reason_that_quotes_no_content(raw: bytes, reason: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert reason in info.value.reason
    assert SECRET not in str(info.value) and "north" not in str(info.value)


def test_the_event_id_is_named_in_errors_when_known() -> None:
    with pytest.raises(EventError) as info:
        parse_event(_with(label=7))
    assert info.value.event_id == "req-8f1c" and str(info.value).startswith("event 'req-8f1c': ")


def test_an_event_above_the_size_limit_is_refused_before_parsing() -> None:
    raw = _with(image={"data": "A" * 2000})
    with pytest.raises(EventError, match=f"event is {len(raw)} bytes, above the limit of 1000"):
        parse_event(raw, max_bytes=1000)
    assert max_event_bytes(DEFAULT_MAX_INLINE_BYTES) == 4 * ((1 << 20) + 2) // 3 + (64 << 10)


def test_inline_bytes_decode_exactly_and_the_cap_is_checked_before_decoding() -> None:
    payload = bytes(range(256)) * 5  # 1280 bytes
    text = base64.b64encode(payload).decode()
    assert decode_inline(text, 1280) == payload
    with pytest.raises(EventError, match="inline image is 1280 bytes, above the cap of 1279"):
        decode_inline(text, 1279)
    with pytest.raises(EventError, match="not valid base64"):
        decode_inline("abc$", 100)
    with pytest.raises(EventError, match="not valid base64"):
        decode_inline(text[:100] + "\n" + text[100:], 2000)  # no line breaks


def test_build_event_round_trips_through_parse_event() -> None:
    doc = build_event(data=b"\x89PNG\r\n\x1a\nrest", content_type="image/png", event_id="e-1", source="svc",
                      time=dt.datetime(2026, 1, 2, 3, 4, 5), tags={"site": "n", "n": 2}, label="cat",
                      boxes=[(1, 2, 3, 4)], model_version="m1", prediction={"label": "cat", "score": 0.5},
                      extra={"trace": "abc"})
    event = parse_event(encode_event(doc))
    assert base64.b64decode(event.data or "") == b"\x89PNG\r\n\x1a\nrest" and event.content_type == "image/png"
    assert event.time == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC) and event.tags == {"site": "n", "n": "2"}
    assert event.boxes == ((1.0, 2.0, 3.0, 4.0),) and event.extra == {"trace": "abc"} and event.id == "e-1"
    assert len(build_event(uri="https://h/x.jpg")["id"]) == 32  # a random UUID by default


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of uri and data"),
    ({"uri": "file:///a", "data": b"x"}, "exactly one of uri and data"),
    ({"data": b"x" * 11, "max_inline_bytes": 10}, "above the cap of 10"),
    ({"uri": "file:///a", "extra": {"label": "x"}}, "would replace fields of the format"),
    ({"uri": "file:///a", "boxes": [(5, 5, 1, 1)]}, "x1 > x0"),
    ({"uri": "gopher://a/b"}, "image: must hold exactly one of"),
])
def test_build_event_refuses_what_the_worker_would_dead_letter(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_event(**kwargs)
