"""Alerts on the dashboard: the banner every page shows while alerts fire, and the texts of the Alerts page.
User-controlled text (summaries name tag values and sources) goes through :func:`dashboard.literal.md`."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboard.literal import md

BANNER_SHOWN = 3


def banner_text(firing: pd.DataFrame, shown: int = BANNER_SHOWN) -> str | None:
    """Markdown of the banner: how many alerts fire and the newest ``shown`` summaries; None when none fires."""
    if firing.empty:
        return None
    n = len(firing)
    lines = [f"**{n} alert{'s' if n != 1 else ''} firing** (see the Alerts page):"]
    lines += [f"- {md(row.rule)}: {md(row.summary)}" + (" *(acknowledged)*" if row.acknowledged_at is not None
                                                          and row.acknowledged_at == row.acknowledged_at else "")
              for row in firing.head(shown).itertuples()]
    if n > shown:
        lines.append(f"- … and {n - shown} more")
    return "\n".join(lines)


def alert_choice(row: pd.Series) -> str:
    """Plain text naming an alert in a selectbox (selectbox options show text as it is)."""
    return f"#{row['id']} {row['rule']}: {row['summary']}"[:160]


def silence_until(now: dt.datetime, hours: float) -> dt.datetime:
    return now + dt.timedelta(hours=hours)


SILENCE_CHOICES: dict[str, float] = {"1 hour": 1, "4 hours": 4, "1 day": 24, "1 week": 168}
