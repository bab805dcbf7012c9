"""Categorical image properties (the camera model) in the reference and in window drift; drawing drift
scores so that up is worse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from camwatch.monitoring.drift import DRIFT_TESTS, get_test
from camwatch.monitoring.reference import ReferenceSummary, StatRow, build_reference
from camwatch.monitoring.windows import compute_window_drift
from camwatch.statistics.registry import UNKNOWN_CATEGORY


def _rows(n: int, models: list[str | None], brightness: float) -> list[StatRow]:
    return [StatRow(class_index=0, stats={"brightness": brightness + (i % 10)},
                    category_values={"camera_model": models[i % len(models)]}, heatmap=np.ones((3, 3)))
            for i in range(n)]


def test_the_reference_counts_camera_models_with_missing_as_its_own_value() -> None:
    ref = build_reference(_rows(90, ["A", "B", None], 100.0))
    assert ref.categories == {"camera_model": {"A": 30, "B": 30, UNKNOWN_CATEGORY: 30}}
    assert sorted(ref.category_labels("camera_model").tolist()) == sorted(["A"] * 30 + ["B"] * 30 + ["(none)"] * 30)
    assert ReferenceSummary.from_dict(ref.to_dict()).categories == ref.categories
    old = ref.to_dict()
    del old["categories"]  # a summary stored before camera models were kept
    assert ReferenceSummary.from_dict(old).categories == {}


def test_a_new_camera_model_drifts_and_the_same_mix_does_not() -> None:
    ref = build_reference(_rows(300, ["A", "B"], 100.0))
    same = {r.statistic: r for r in compute_window_drift(ref, _rows(60, ["B", "A"], 100.0))}
    new = {r.statistic: r for r in compute_window_drift(ref, _rows(60, ["C"], 100.0))}
    assert same["camera_model"].test == "jensen_shannon" and not same["camera_model"].drifted
    assert same["camera_model"].score == pytest.approx(0.0, abs=1e-12)
    assert new["camera_model"].drifted and new["camera_model"].score == pytest.approx(1.0)  # disjoint mixes
    assert new["camera_model"].class_index == -1 and not new["brightness"].drifted
    darker = {r.statistic: r for r in compute_window_drift(ref, _rows(60, ["A", "B"], 70.0))}
    assert darker["brightness"].drifted and not darker["camera_model"].drifted


def test_drift_strength_points_up_when_drift_is_stronger() -> None:
    ks, js, r = get_test("ks"), get_test("jensen_shannon"), get_test("heatmap_correlation")
    assert ks.strength(0.05) == pytest.approx(-math.log10(0.05)) and ks.strength(0.0) == 300.0
    assert ks.strength(1e-6) > ks.strength(0.05) > ks.strength(0.5)  # smaller p: higher
    assert r.strength(0.5) > r.strength(0.9) and r.strength(0.9) == pytest.approx(0.1)
    assert js.strength(0.3) == 0.3
    for test in DRIFT_TESTS.values():  # the decision is "strength beyond the threshold's strength"
        beyond = {"<": test.threshold * 0.5, ">": test.threshold * 1.5, ">=": test.threshold * 1.5}[test.drift_if]
        assert test.strength(beyond) > test.strength(test.threshold), test.key
        assert test.strength_label
