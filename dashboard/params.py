"""Query parameters of shareable links (``?image=42``, ``?statistic=energy_outside``, ``?slice=camera:cam-2``),
validated: a value that is not valid shows a friendly note naming the parameter (its value shown as
literal text) and the page goes on with its default, never a traceback."""

from __future__ import annotations

import re
from collections.abc import Sequence

import streamlit as st

from dashboard.literal import md

#: Ids are PostgreSQL ``integer`` columns: 1 .. 2**31 - 1.
MAX_ID = 2**31 - 1
_ID = re.compile(r"[0-9]{1,10}")
_SHOWN_CHARS = 60


def _shown(value: str) -> str:
    return md(value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…")


def invalid_note(name: str, value: str, expected: str) -> None:
    """The friendly note for an invalid ``?name=value``."""
    st.warning(f"The link's `{name}` parameter ({_shown(value)}) is not {expected}; showing the default "
               "instead.", icon=":material/link_off:")


def parse_id(value: str | None) -> int | None:
    """An id from text (ASCII digits, 1 .. :data:`MAX_ID`), else None."""
    if value is None or not _ID.fullmatch(value):
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def id_param(name: str) -> int | None:
    """The id in ``?name=`` (None when absent; a note and None when invalid)."""
    raw = st.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = parse_id(raw)
    if value is None:
        invalid_note(name, raw, f"an id (a whole number from 1 to {MAX_ID})")
    return value


def choice_param(name: str, options: Sequence[str], default: int = 0) -> int:
    """Index of ``?name=`` among ``options``; ``default`` when absent, with a note when not an option."""
    raw = st.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw in options:
        return list(options).index(raw)
    invalid_note(name, raw, "one of the choices available here")
    return default
