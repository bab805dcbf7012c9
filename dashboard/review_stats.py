"""What the reviews say per flag rule (and per slice): counts per verdict, precision with its Wilson
interval, the threshold in force and the one the verdicts suggest (:mod:`camwatch.monitoring.review`).
Pure functions of :func:`db.reviews.reviewed_flags` frames, so they are tested without a page."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from camwatch.conventions import VERDICTS
from camwatch.monitoring.flags import FLAG_RULES, FlagConfig
from camwatch.monitoring.review import Precision, Suggestion, suggest_threshold
from camwatch.settings import ReviewSettings

COLUMNS = ("rule", "slice", "flagged", "reviewed", "confirmed", "false_alarms", "wrong_label", "unsure",
           "precision", "low", "high")


def current_threshold(rule: str, config: FlagConfig) -> float | None:
    """The threshold ``rule`` flags with under ``config`` (None for rules without a tunable threshold)."""
    setting = FLAG_RULES[rule].setting if rule in FLAG_RULES else None
    return None if setting is None else float(getattr(config, setting))


def _counts(rows: pd.DataFrame) -> dict[str, object]:
    verdicts = rows["verdict"].value_counts()
    tp = int(sum(verdicts.get(k, 0) for k, v in VERDICTS.items() if v.counts_as == "tp"))
    fp = int(sum(verdicts.get(k, 0) for k, v in VERDICTS.items() if v.counts_as == "fp"))
    precision = Precision(tp, fp)
    interval = precision.interval
    return {"reviewed": int(len(rows)), "confirmed": tp, "false_alarms": fp,
            "wrong_label": int(verdicts.get("wrong_label", 0)), "unsure": int(verdicts.get("unsure", 0)),
            "precision": precision.value if precision.value is not None else math.nan,
            "low": interval[0] if interval else math.nan, "high": interval[1] if interval else math.nan}


def precision_table(reviewed: pd.DataFrame, flagged: Mapping[str, int], by_slice: bool = False) -> pd.DataFrame:
    """One row per rule (per rule and slice with ``by_slice``) with :data:`COLUMNS`; rules that flagged
    images but have no review yet are listed with zero counts (overall view)."""
    records: list[dict[str, object]] = []
    keys = ["rule", "slice"] if by_slice else ["rule"]
    groups = reviewed.groupby(keys, dropna=False, sort=True) if len(reviewed) else []
    for key, rows in groups:
        values = key if isinstance(key, tuple) else (key,)
        rule, slice_ = values[0], values[1] if by_slice else None
        records.append({"rule": rule, "slice": slice_, "flagged": None if by_slice else flagged.get(str(rule)),
                        **_counts(rows)})
    if not by_slice:
        seen = {r["rule"] for r in records}
        records += [{"rule": rule, "slice": None, "flagged": n, **_counts(reviewed.iloc[0:0])}
                    for rule, n in sorted(flagged.items()) if rule not in seen]
    frame = pd.DataFrame(records, columns=list(COLUMNS))
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if len(frame) else frame


def suggestions(reviewed: pd.DataFrame, config: FlagConfig, review: ReviewSettings) -> dict[str, Suggestion]:
    """The suggested threshold of every tunable rule with reviews, from the values of its confirmed flags and
    false alarms, starting at the threshold in force under ``config``."""
    out: dict[str, Suggestion] = {}
    for rule, rows in reviewed.groupby("rule", sort=True) if len(reviewed) else []:
        current = current_threshold(str(rule), config)
        if current is None:
            continue
        tp = [VERDICTS[v].counts_as == "tp" if v in VERDICTS else False for v in rows["verdict"]]
        fp = [VERDICTS[v].counts_as == "fp" if v in VERDICTS else False for v in rows["verdict"]]
        out[str(rule)] = suggest_threshold(rows["value"][tp].tolist(), rows["value"][fp].tolist(), current,
                                           FLAG_RULES[str(rule)].flagged_when,
                                           target_precision=review.target_precision, min_reviews=review.min_reviews)
    return out
