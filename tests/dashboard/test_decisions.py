"""What the dashboard says about a calibrated drift result: its state and why."""

from __future__ import annotations

import math

import pandas as pd

from dashboard import decisions


def _row(**values: object) -> dict[str, object]:
    base = {"statistic": "energy_outside", "class_index": -1, "test": "ks", "score": 1e-6, "threshold": 0.05,
            "drifted": True, "decision": "drifted", "decision_rule": "fdr_effect", "p_value": 1e-6, "q_value": 2e-5,
            "fdr": 0.01, "effect_size": 0.8, "effect_threshold": 0.2, "n_current": 120, "n_reference": 75}
    return {**base, **values}


def test_state_badge_and_why_of_each_decision() -> None:
    drifted = _row()
    assert decisions.state(drifted) == "drifted" and "red" in decisions.badge(drifted)
    assert decisions.why(drifted) == "q 2e-05 (FDR 0.01); effect 0.8 (threshold 0.2)"
    small = _row(decision="no_drift", drifted=False, effect_size=0.05)
    assert decisions.state(small) == "no_drift" and "effect 0.05 (threshold 0.2)" in decisions.why(small)
    empty = _row(decision="not_enough_data", drifted=False, score=math.nan, q_value=None)
    assert "not enough data" in decisions.badge(empty) and decisions.why(empty).startswith("not enough data")
    assert "not run" in decisions.detail(empty)


def test_rows_without_decision_columns_fall_back_to_drifted_and_score() -> None:
    legacy = {"statistic": "gini", "test": "ks", "score": 0.01, "threshold": 0.05, "drifted": True}
    assert decisions.state(legacy) == "drifted"
    assert decisions.why(legacy) == "score 0.01 against threshold 0.05"
    assert decisions.state({"score": None, "drifted": False}) == "not_enough_data"


def test_decision_table_lists_drifted_first_and_counts_states() -> None:
    frame = pd.DataFrame([_row(statistic="b", decision="no_drift", drifted=False), _row(statistic="a"),
                          _row(statistic="c", decision="not_enough_data", drifted=False, score=None)])
    table = decisions.decision_table(frame)
    assert table["statistic"].tolist() == ["a", "b", "c"]
    assert table["state"].tolist() == ["drifted", "ok", "not enough data"]
    assert decisions.summary(frame) == {"drifted": 1, "no_drift": 1, "not_enough_data": 1}
    assert decisions.decision_table(frame.iloc[:0]).empty
