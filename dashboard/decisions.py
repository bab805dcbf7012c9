"""Calibrated drift decisions as the dashboard shows them (Overview badges, Drift page table and hovers):
the state of a stored result and one line saying why (:func:`camwatch.monitoring.calibration.explain`;
definitions in docs/metrics.md "Drift decisions"). Pure functions of the stored columns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from camwatch.monitoring.calibration import explain

STATE_LABELS = {"drifted": "drifted", "no_drift": "ok", "not_enough_data": "not enough data"}
_BADGES = {"drifted": ":red-badge[drifted]", "no_drift": ":green-badge[ok]",
           "not_enough_data": ":gray-badge[not enough data]"}


def _value(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def state(row: Mapping[str, Any]) -> str:
    """``drifted``, ``no_drift`` or ``not_enough_data`` of a stored result (rows stored before decisions
    were spelled out: from ``drifted`` and ``score``)."""
    decision = _value(row, "decision")
    if decision in STATE_LABELS:
        return str(decision)
    if _value(row, "score") is None:
        return "not_enough_data"
    return "drifted" if bool(row.get("drifted")) else "no_drift"


def badge(row: Mapping[str, Any]) -> str:
    """The Streamlit badge markdown of a result's state."""
    return _BADGES[state(row)]


def why(row: Mapping[str, Any]) -> str:
    """One line: why the stored result decided what it did."""
    return explain(state(row), str(_value(row, "decision_rule") or "threshold"),
                   q_value=_value(row, "q_value"), fdr=_value(row, "fdr"), effect_size=_value(row, "effect_size"),
                   effect_threshold=_value(row, "effect_threshold"), score=_value(row, "score"),
                   threshold=_value(row, "threshold"))


def detail(row: Mapping[str, Any]) -> str:
    """The test's own score against its threshold and the sample sizes (a tooltip)."""
    score, threshold = _value(row, "score"), _value(row, "threshold")
    shown = "not run" if score is None else f"{score:.3g}"
    limit = "" if threshold is None else f" (threshold {threshold:.3g})"
    return (f"{row.get('test', '')} score {shown}{limit}; n = {row.get('n_current')} current, "
            f"{row.get('n_reference')} reference")


def decision_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per result: statistic, class, state, why, test, score, threshold, q, FDR, effect, effect
    threshold, images (drifted first, then by statistic)."""
    columns = ["statistic", "class_index", "state", "why", "test", "score", "threshold", "q_value", "fdr",
               "effect_size", "effect_threshold", "n_current"]
    if results.empty:
        return pd.DataFrame(columns=columns)
    rows = results.to_dict("records")
    frame = results.assign(state=[STATE_LABELS[state(r)] for r in rows], why=[why(r) for r in rows])
    for column in columns:
        if column not in frame:
            frame[column] = None
    order = frame["state"].map({"drifted": 0, "ok": 1, "not enough data": 2})
    return frame.assign(_order=order).sort_values(["_order", "statistic", "class_index"])[columns] \
        .reset_index(drop=True)


def summary(results: pd.DataFrame) -> dict[str, int]:
    """How many results are in each state (keys of :data:`STATE_LABELS`)."""
    counts = {key: 0 for key in STATE_LABELS}
    for r in results.to_dict("records"):
        counts[state(r)] += 1
    return counts
