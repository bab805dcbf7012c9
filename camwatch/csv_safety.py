"""CSV files that spreadsheets open safely: text that would start a formula is neutralised.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or their full-width forms,
which some spreadsheets also accept) is read by Excel, LibreOffice and Google Sheets as a formula, which can
fetch URLs or run commands (``=HYPERLINK(...)``, DDE ``=cmd|'/c calc'!A1``): "CSV injection" (OWASP). Such
text is written with a leading apostrophe, which the spreadsheet shows as the text itself. Numbers are not
text and keep their sign; only strings are changed.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise(value: T) -> T | str:
    """``value`` unchanged unless it is text starting a formula; then ``"'" + value``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
