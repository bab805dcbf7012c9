"""Bounds on what a file controls, applied to every result before it is written, on every database.

Text columns have sizes (``String(n)`` in :mod:`db.models`, the one owner of them): PostgreSQL refuses a
longer value with ``DataError`` (which lost the whole batch), SQLite stores it silently. A label, tag key or
tag value longer than its column is cut to fit, ending in ``…``, and a warning is stored on the image.
Text that no database can store is made storable: NUL characters (PostgreSQL text cannot hold them) and
lone surrogates (a file name that is not UTF-8) are written as ``\\x00`` / ``\\udcff`` escapes. The number
of tags, of warnings and the length of an error or warning are capped too. A tag key must name a slice
(``key=value``): an empty key, or one holding ``=``, is renamed (``=`` becomes ``_``).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import String

from db.models import Image, ImageTag
from db.records import ImageResult

#: Tags stored per image (a sidecar may list thousands); the first ones in file order are kept.
MAX_TAGS = 64
#: Warnings stored per image, and characters per warning; characters of an error reason.
MAX_WARNINGS = 32
MAX_WARNING_CHARS = 500
MAX_ERROR_CHARS = 2000
ELLIPSIS = "…"


def column_length(column: object) -> int:
    """The declared length of a ``String(n)`` column."""
    kind = getattr(column, "type", None)
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{column} is not a String(n) column")
    return int(kind.length)


LABEL_CHARS = column_length(Image.__table__.c.label)
TAG_KEY_CHARS = column_length(ImageTag.__table__.c.key)
TAG_VALUE_CHARS = column_length(ImageTag.__table__.c.value)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def fit_int64(value: int) -> int:
    """``value`` clamped to a BIGINT (a file modification time in the year 3000 is 3.2e19 ns: beyond it)."""
    return min(max(int(value), INT64_MIN), INT64_MAX)


def storable(text: str) -> str:
    """``text`` with NUL characters and lone surrogates written as backslash escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def fit(text: str, limit: int) -> str:
    """:func:`storable` ``text`` cut to at most ``limit`` characters (ending in ``…`` when cut)."""
    text = storable(text)
    return text if len(text) <= limit else text[:limit - 1] + ELLIPSIS


def bounded(result: ImageResult) -> ImageResult:
    """``result`` with every text fitted to its column and the counts capped; a warning is added for each
    value that was cut (the result's own warnings come first)."""
    notes: list[str] = []

    def fitted(text: str, limit: int, what: str) -> str:
        safe = storable(text)
        if safe != text:
            notes.append(f"{what}: characters no database can store were escaped")
        if len(safe) > limit:
            notes.append(f"{what} cut to {limit} characters")
            return safe[:limit - 1] + ELLIPSIS
        return safe

    label = None if result.label is None else fitted(result.label, LABEL_CHARS, "label")
    tags: dict[str, str] = {}
    for key, value in result.tags.items():
        if len(tags) == MAX_TAGS:
            notes.append(f"{len(result.tags)} tags: only the first {MAX_TAGS} kept")
            break
        short_key, short_value = fitted(str(key), TAG_KEY_CHARS, "a tag key"), fitted(str(value), TAG_VALUE_CHARS,
                                                                                      "a tag value")
        if not short_key or "=" in short_key:  # a slice is named key=value (camwatch.conventions.slice_label)
            short_key = short_key.replace("=", "_") or "_"
            notes.append("a tag key that was empty or held '=' was renamed (a slice is named key=value)")
        if short_key in tags:
            notes.append(f"two tag keys are equal once cut to {TAG_KEY_CHARS} characters: the first kept")
            continue
        tags[short_key] = short_value
    warnings = [fit(w, MAX_WARNING_CHARS) for w in [*result.warnings, *notes]]
    if len(warnings) > MAX_WARNINGS:
        warnings = [*warnings[:MAX_WARNINGS - 1], f"{len(warnings) - MAX_WARNINGS + 1} more warnings not stored"]
    error = None if result.error is None else fit(result.error, MAX_ERROR_CHARS)
    return dataclasses.replace(result, label=label, tags=tags, warnings=warnings, error=error)
