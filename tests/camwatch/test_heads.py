"""Head definitions without torch: the class mix and correctness of multi-label predictions, and the class-mix
drift of multi-label windows (the positive labels, not only the most probable one)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from camwatch.conventions import ALL_CLASSES
from camwatch.heads import HEAD_KINDS, HEADS, NO_LABEL, TARGET_MODES, is_correct, mix_labels
from camwatch.monitoring.reference import ReferenceSummary, StatRow, build_reference
from camwatch.monitoring.windows import PREDICTED_CLASS, compute_window_drift


def test_catalogue_and_vocabularies():
    assert tuple(HEADS) == HEAD_KINDS == ("softmax", "sigmoid", "binary")
    assert TARGET_MODES == ("top1", "label", "both")


def test_mix_labels_and_correctness_per_head():
    assert mix_labels(3, None) == [3]  # softmax, binary: the predicted class
    assert mix_labels(3, [3, 5]) == [3, 5]  # multi-label: every positive label
    assert mix_labels(3, []) == [NO_LABEL]  # no class above the threshold
    assert is_correct(None, 3, None) is None
    assert is_correct(3, 3, None) is True and is_correct(2, 3, None) is False
    assert is_correct(5, 3, [3, 5]) is True and is_correct(4, 3, [3, 5]) is False
    assert is_correct(3, 3, []) is False  # the top class was not even above the threshold


def _rows(labels: list[tuple[int, ...]], seed: int = 0) -> list[StatRow]:
    rng = np.random.default_rng(seed)
    return [StatRow(ls[0] if ls else 0, {"gini": float(rng.normal())}, labels=ls) for ls in labels]


def test_multi_label_reference_counts_positive_labels_and_round_trips():
    rows = _rows([(0, 1)] * 30 + [(0,)] * 20 + [()] * 10)
    ref = build_reference(rows)
    assert ref.class_counts == {0: 60}  # per-class summaries: the explained (most probable) class
    assert ref.label_counts == {NO_LABEL: 10, 0: 50, 1: 30}
    assert sorted(ref.class_labels().tolist()) == [NO_LABEL] * 10 + [0] * 50 + [1] * 30
    again = ReferenceSummary.from_dict(ref.to_dict())
    assert again.label_counts == ref.label_counts and again.class_counts == ref.class_counts
    assert build_reference(_rows([(0,)] * 5)).label_counts == {0: 5}
    assert build_reference([StatRow(0, {"gini": 1.0})]).label_counts is None  # single-label rows


def test_class_mix_drift_sees_a_lost_second_label_that_the_top_class_hides():
    """Every image's most probable label stays 0; the second label (1) disappears from the window."""
    reference = build_reference(_rows([(0, 1)] * 100 + [(0,)] * 100))
    window = _rows([(0,)] * 200, seed=1)
    by_key = {(r.statistic, r.class_index): r for r in compute_window_drift(reference, window, statistics=["gini"])}
    mix = by_key[(PREDICTED_CLASS, ALL_CLASSES)]
    # reference labels: 0 ×200, 1 ×100; window: 0 ×200 → the class_mix chi-square on both cells
    expected_p = chi2_contingency(np.array([[200, 100], [200, 0]]), correction=False).pvalue
    assert mix.test == "class_mix" and mix.score == pytest.approx(float(expected_p), rel=1e-6)
    assert mix.effect_size == pytest.approx(1 / 3) and mix.drifted
    assert mix.n_reference == 300 and mix.n_current == 200
    js = next(r for r in compute_window_drift(reference, window, statistics=["gini"],
                                              tests={PREDICTED_CLASS: "jensen_shannon"})
              if r.statistic == PREDICTED_CLASS)
    # Jensen–Shannon distance of (2/3, 1/3) and (1, 0)
    assert js.score == pytest.approx(float(jensenshannon([2 / 3, 1 / 3], [1.0, 0.0], base=2)), rel=1e-6)
    same = compute_window_drift(reference, _rows([(0, 1)] * 100 + [(0,)] * 100, seed=2), statistics=["gini"])
    assert not next(r for r in same if r.statistic == PREDICTED_CLASS).drifted


def test_head_and_target_settings(monkeypatch):
    from camwatch.settings import load_settings

    monkeypatch.setenv("CAMWATCH_HEAD", "sigmoid")
    monkeypatch.setenv("CAMWATCH_TARGET", "both")
    s = load_settings(head_threshold=0.7)
    assert (s.head, s.head_threshold, s.target) == ("sigmoid", 0.7, "both")
    monkeypatch.delenv("CAMWATCH_HEAD")
    monkeypatch.delenv("CAMWATCH_TARGET")
    default = load_settings()
    assert (default.head, default.head_threshold, default.target) == (None, 0.5, "top1")
    for bad in ({"head_threshold": 1.0}, {"head": "softmax2"}, {"target": "label2"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            load_settings(**bad)
