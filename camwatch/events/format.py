"""The ``camwatch.image.v1`` event: reading (with the shipped JSON Schema), checking and writing it.

The JSON Schema (``image.v1.schema.json`` next to this module) is the contract and what validates incoming
events; the checks it cannot express follow in :func:`parse_event` (boxes with ``x1 > x0`` and
``y1 > y0``, finite numbers, a parseable time). Reasons never quote the event's values (an inline image
would end up in a log), only where the problem is and what was expected.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

SPECVERSION = "camwatch.image.v1"
SCHEMA_FILE = "image.v1.schema.json"
#: Default cap on an inline image, decoded (``queue.max_inline_bytes``).
DEFAULT_MAX_INLINE_BYTES = 1 << 20
#: Unknown fields above this size (compact JSON) are not stored; the event is still processed.
MAX_EXTRA_BYTES = 64 << 10
#: File name extension of a spooled inline image, by content type (the schema's enum).
CONTENT_TYPE_SUFFIXES: dict[str, str] = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/bmp": ".bmp", "image/tiff": ".tif",
    "image/gif": ".gif",
}
KNOWN_FIELDS = frozenset({"specversion", "id", "source", "time", "image", "tags", "label", "boxes", "model_version",
                          "prediction"})

Box = tuple[float, float, float, float]


class EventError(Exception):
    """An event that cannot be used; ``reason`` says why (no event content), ``event_id`` when known."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        self.reason = reason
        self.event_id = event_id
        super().__init__(reason if event_id is None else f"event {event_id!r}: {reason}")


@cache
def schema() -> dict[str, Any]:
    """The ``camwatch.image.v1`` JSON Schema shipped with the package."""
    text = resources.files("camwatch.events").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@cache
def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def max_event_bytes(max_inline_bytes: int) -> int:
    """Largest raw event accepted: the base64 of the inline cap plus 64 KiB for the other fields."""
    return 4 * math.ceil(max_inline_bytes / 3) + (64 << 10)


@dataclass(frozen=True)
class ImageEvent:
    """A valid event. ``data`` is the inline image's base64 text (decode with :func:`decode_inline`)."""

    id: str
    uri: str | None = None
    data: str | None = None
    content_type: str | None = None
    source: str | None = None
    time: dt.datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    label: str | None = None
    boxes: tuple[Box, ...] = ()
    model_version: str | None = None
    prediction: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level fields, kept

    def metadata(self) -> dict[str, Any]:
        """What is stored with the image (JSON): every field but the inline bytes; unknown fields under
        ``extra`` (dropped with a note when above :data:`MAX_EXTRA_BYTES`)."""
        image: dict[str, Any] = {"uri": self.uri} if self.uri is not None else {
            "inline": True, "content_type": self.content_type}
        doc: dict[str, Any] = {"id": self.id, "image": image, "source": self.source,
                               "time": self.time.isoformat() if self.time else None, "tags": dict(self.tags),
                               "label": self.label, "boxes": [list(b) for b in self.boxes],
                               "model_version": self.model_version, "prediction": self.prediction}
        if self.extra:
            size = len(json.dumps(self.extra, separators=(",", ":")))
            doc["extra"] = self.extra if size <= MAX_EXTRA_BYTES else {
                "_dropped": f"{size} bytes of unknown fields, above the {MAX_EXTRA_BYTES}-byte limit"}
        return {k: v for k, v in doc.items() if v not in (None, [], {})}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _where(error: ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "the event"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def describe(error: ValidationError) -> str:
    """One line naming where the event breaks the schema and what was expected (never its values)."""
    where, keyword, expected = _where(error), str(error.validator), error.validator_value
    if keyword == "required":
        missing = [k for k in expected if isinstance(error.instance, dict) and k not in error.instance]
        return f"{where}: missing required field(s) {missing}"
    if keyword == "const" and error.absolute_path and error.absolute_path[-1] == "specversion":
        return f"specversion: must be {SPECVERSION!r} (this worker reads {SPECVERSION})"
    if keyword == "oneOf" and where == "image":
        return ('image: must hold exactly one of {"uri": "file://..." | "http(s)://..."} or '
                '{"data": base64, "content_type": ...}')
    if "propertyNames" in error.absolute_schema_path:
        return f"{where}: keys must be 1 to 100 characters without '='"
    if keyword == "anyOf" and where == "prediction":
        return "prediction: needs class_index or label"
    messages = {
        "type": f"expected {expected}, got {_json_type(error.instance)}",
        "const": f"must be {expected!r}", "enum": f"must be one of {expected}",
        "minLength": f"shorter than {expected} characters", "maxLength": f"longer than {expected} characters",
        "minimum": f"below the minimum {expected}", "maximum": f"above the maximum {expected}",
        "minItems": f"fewer than {expected} items", "maxItems": f"more than {expected} items",
        "maxProperties": f"more than {expected} entries", "pattern": f"does not match {expected!r}",
    }
    return f"{where}: {messages.get(keyword, f'fails the schema rule {keyword!r}')}"


def _check(doc: Any) -> None:
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (len(e.absolute_path), str(e.validator)))
    if errors:
        event_id = doc.get("id") if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None
        raise EventError("schema: " + "; ".join(dict.fromkeys(describe(e) for e in errors[:5])), event_id)


def _parse_time(text: str, event_id: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise EventError("time: not an ISO 8601 date-time (e.g. 2026-11-30T08:15:00Z)", event_id) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _parse_boxes(raw: Sequence[Sequence[float]], event_id: str) -> tuple[Box, ...]:
    boxes = []
    for i, box in enumerate(raw):
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise EventError(f"boxes/{i}: not finite", event_id)
        if not (x1 > x0 and y1 > y0):
            raise EventError(f"boxes/{i}: expected [x0, y0, x1, y1] with x1 > x0 and y1 > y0", event_id)
        boxes.append((x0, y0, x1, y1))
    return tuple(boxes)


def parse_event(raw: bytes | str, *, max_bytes: int | None = None) -> ImageEvent:
    """The event in ``raw`` (UTF-8 JSON), or :class:`EventError` with the reason."""
    limit = max_event_bytes(DEFAULT_MAX_INLINE_BYTES) if max_bytes is None else max_bytes
    if len(raw) > limit:
        raise EventError(f"event is {len(raw)} bytes, above the limit of {limit}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        doc = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise EventError("not UTF-8 text") from None
    except ValueError as exc:  # json.JSONDecodeError (position only, no content), NaN/Infinity
        raise EventError(f"malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise EventError(f"expected a JSON object, got {_json_type(doc)}")
    _check(doc)
    event_id: str = doc["id"]
    image = doc["image"]
    return ImageEvent(
        id=event_id, uri=image.get("uri"), data=image.get("data"), content_type=image.get("content_type"),
        source=doc.get("source"), time=_parse_time(doc["time"], event_id) if "time" in doc else None,
        tags={str(k): str(v) for k, v in (doc.get("tags") or {}).items()}, label=doc.get("label"),
        boxes=_parse_boxes(doc.get("boxes") or [], event_id), model_version=doc.get("model_version"),
        prediction=doc.get("prediction"), extra={k: v for k, v in doc.items() if k not in KNOWN_FIELDS})


def decode_inline(data: str, max_bytes: int, event_id: str | None = None) -> bytes:
    """The bytes of an inline image, refused above ``max_bytes`` (checked before decoding)."""
    padding = len(data) - len(data.rstrip("="))
    size = len(data) * 3 // 4 - padding
    if size > max_bytes:
        raise EventError(f"inline image is {size} bytes, above the cap of {max_bytes} "
                         "(queue.max_inline_bytes; send a uri instead)", event_id)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise EventError("image/data is not valid base64 (standard alphabet, padded, no line breaks)",
                         event_id) from None


def build_event(*, uri: str | None = None, data: bytes | None = None, content_type: str | None = None,
                event_id: str | None = None, source: str | None = None, time: dt.datetime | str | None = None,
                tags: Mapping[str, Any] | None = None, label: str | None = None,
                boxes: Sequence[Sequence[float]] | None = None, model_version: str | None = None,
                prediction: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
                max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES) -> dict[str, Any]:
    """A valid event document (checked with the schema and :func:`parse_event`'s rules) for one image."""
    if (uri is None) == (data is None):
        raise ValueError("an event carries exactly one of uri and data")
    if data is not None and len(data) > max_inline_bytes:
        raise ValueError(f"inline image is {len(data)} bytes, above the cap of {max_inline_bytes}; send a uri")
    clash = sorted(set(extra or {}) & KNOWN_FIELDS)
    if clash:
        raise ValueError(f"extra fields {clash} would replace fields of the format")
    image: dict[str, Any] = {"uri": uri} if uri is not None else {
        "data": base64.b64encode(data or b"").decode("ascii")}
    if content_type is not None:
        image["content_type"] = content_type
    doc: dict[str, Any] = {"specversion": SPECVERSION, "id": event_id or uuid.uuid4().hex, "image": image,
                           **dict(extra or {})}
    if isinstance(time, dt.datetime):
        time = (time if time.tzinfo else time.replace(tzinfo=dt.UTC)).isoformat()
    optional = {"source": source, "time": time, "tags": dict(tags) if tags else None, "label": label,
                "boxes": [list(b) for b in boxes] if boxes else None, "model_version": model_version,
                "prediction": dict(prediction) if prediction else None}
    doc.update({k: v for k, v in optional.items() if v is not None})
    try:
        parse_event(encode_event(doc), max_bytes=max_event_bytes(max_inline_bytes))
    except EventError as exc:
        raise ValueError(f"invalid event: {exc}") from None
    return doc


def encode_event(doc: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of an event document."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
