"""User-controlled text shown as literal text: in Streamlit markdown, in plotly figures, in CSV downloads.

Everything a file, a sidecar, a worker or a reviewer controls (uri, file name, label, tag key and value,
class name, error text, reviewer, warning) is text to show, never markup to interpret. Streamlit renders
markdown (GitHub-flavoured: links, images, autolinked URLs and e-mail addresses, HTML-free) in
``st.markdown``, captions, alerts, metric and widget labels and help; a tag ``[re-login](https://…)``
would become a live link and ``![x](https://…)`` would load a remote image. Plotly renders a subset of
HTML (``<a href>``, ``<b>``, ``<br>``) in titles, tick labels and legends.

- :func:`md` escapes every ASCII punctuation character with a backslash (CommonMark lets any of them be
  escaped; an escaped character is plain text, so no link, image, emphasis, code span, heading, table,
  HTML, math or directive can start) and turns line breaks into spaces. GitHub-flavoured *autolinks*
  (``https://…``, ``www.…``, ``name@host``) are found in the text after escapes are resolved (measured in
  Chromium: an escaped URL still became a link), so an invisible WORD JOINER (U+2060) follows every ``:``,
  ``.`` and ``@``: the text looks the same and no autolink pattern matches it any more.
- :func:`plot_text` escapes ``&``, ``<`` and ``>`` as HTML entities, which plotly shows as the characters.
- :func:`csv_safe_frame` neutralises spreadsheet formulas (:mod:`camwatch.csv_safety`) in a DataFrame.

Data frames (``st.dataframe``) and selectbox options already show text as it is.
"""

from __future__ import annotations

import string

import pandas as pd

from camwatch.csv_safety import neutralise

WORD_JOINER = "\u2060"
_JOINED = ":.@"
_ESCAPED = ({ord(c): "\\" + c for c in string.punctuation} | {ord("\n"): " ", ord("\r"): " "}
            | {ord(c): "\\" + c + WORD_JOINER for c in _JOINED})
_HTML = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"}


def md(value: object) -> str:
    """``value`` as markdown that renders exactly its text (see the module docstring)."""
    return str(value).translate(_ESCAPED)


def plot_text(value: object) -> str:
    """``value`` as plotly text that renders exactly its characters."""
    return str(value).translate(_HTML)


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot start a spreadsheet formula."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise)
    return out
