"""Queue events: the ``camwatch.image.v1`` format (docs/events.md), its JSON Schema
(``image.v1.schema.json``, shipped in the package), reading and writing events."""

from camwatch.events.format import (
    CONTENT_TYPE_SUFFIXES,
    DEFAULT_MAX_INLINE_BYTES,
    SPECVERSION,
    EventError,
    ImageEvent,
    build_event,
    decode_inline,
    encode_event,
    max_event_bytes,
    parse_event,
    schema,
)

__all__ = ["CONTENT_TYPE_SUFFIXES", "DEFAULT_MAX_INLINE_BYTES", "SPECVERSION", "EventError", "ImageEvent",
           "build_event", "decode_inline", "encode_event", "max_event_bytes", "parse_event", "schema"]
