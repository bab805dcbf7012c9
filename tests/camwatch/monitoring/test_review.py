"""Precision, its Wilson interval, threshold suggestions from verdicts, and Benjamini-Hochberg."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from camwatch.conventions import VERDICTS
from camwatch.monitoring.calibration import benjamini_hochberg
from camwatch.monitoring.flags import FLAG_RULES, FlagConfig
from camwatch.monitoring.review import Precision, suggest_threshold, wilson_interval


@pytest.mark.parametrize("k, n, low, high", [
    (6, 12, 0.2538, 0.7462),  # published Wilson 95 % interval of 6/12
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998), example (Wilson score method)
])
def test_wilson_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)  # type: ignore[misc]
    assert lo == pytest.approx(low, abs=5e-4) and hi == pytest.approx(high, abs=5e-4)


def test_wilson_interval_inverts_the_score_test() -> None:
    """At each bound, the two-sided score test of p = bound has p-value 0.05 (the interval's definition)."""
    k, n = 17, 40
    for bound in wilson_interval(k, n):  # type: ignore[union-attr]
        z = (k / n - bound) / math.sqrt(bound * (1 - bound) / n)
        assert 2 * stats.norm.sf(abs(z)) == pytest.approx(0.05, abs=1e-9)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_precision_counts_only_true_and_false_positives() -> None:
    p = Precision(tp=3, fp=1)
    assert (p.reviewed, p.value) == (4, 0.75) and p.interval == wilson_interval(3, 4)
    assert Precision(0, 0).value is None
    assert {k for k, v in VERDICTS.items() if v.counts_as == "tp"} == {"wrong_attention_confirmed"}
    assert {k for k, v in VERDICTS.items() if v.counts_as == "fp"} == {"false_alarm"}


def test_suggested_threshold_separates_confirmed_from_false_alarms() -> None:
    tp = [0.72, 0.75, 0.8, 0.85, 0.9, 0.95]
    fp = [0.52, 0.55, 0.6, 0.62, 0.65, 0.68]
    s = suggest_threshold(tp, fp, 0.5, "above")
    assert s.threshold == 0.7 and s.reaches_target and s.changes  # between 0.68 and 0.72, fewest decimals
    assert s.precision == Precision(6, 0)
    # one more false alarm at 0.74 moves the cut above it
    s2 = suggest_threshold(tp, [*fp, 0.74], 0.5, "above")
    assert s2.threshold == 0.745 and s2.precision == Precision(5, 0)  # strictly between 0.74 and 0.75


def test_current_threshold_kept_when_it_is_precise_enough() -> None:
    s = suggest_threshold([0.6, 0.7, 0.8] * 4, [0.55], 0.5, "above", target_precision=0.9)
    assert s.threshold == 0.5 and not s.changes and s.precision == Precision(12, 1)


def test_rules_flagging_below_move_their_threshold_down() -> None:
    s = suggest_threshold([0.01, 0.02, 0.03, 0.04], [0.06, 0.07, 0.08], 0.1, "below", min_reviews=5)
    assert s.threshold is not None and 0.04 < s.threshold <= 0.06 and s.precision == Precision(4, 0)
    assert FLAG_RULES["low_confidence"].flagged_when == "below"


def test_no_suggestion_without_enough_reviews_or_confirmed_flags() -> None:
    few = suggest_threshold([0.9], [0.6], 0.5, "above", min_reviews=10)
    assert few.threshold is None and "needs 10" in few.reason
    none = suggest_threshold([], [0.6] * 12, 0.5, "above")
    assert none.threshold is None and "no reviewed flag was confirmed" in none.reason


def test_unreachable_target_reports_the_most_precise_cut() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 1.0, 40)
    truth = rng.random(40) < 0.5  # verdicts unrelated to the value
    s = suggest_threshold(values[truth].tolist(), values[~truth].tolist(), 0.5, "above", target_precision=0.99)
    assert s.threshold is not None and not s.reaches_target and "no threshold reaches" in s.reason


def test_reviews_flagged_under_an_older_looser_threshold_are_left_out() -> None:
    s = suggest_threshold([0.9] * 10, [0.55] * 5, 0.6, "above")  # the 0.55 flags would not fire at 0.6
    assert s.threshold == 0.6 and s.precision == Precision(10, 0)


def test_tunable_rules_name_their_setting() -> None:
    settings = {k: r.setting for k, r in FLAG_RULES.items()}
    assert settings == {"energy_outside": "energy_outside_max", "pointing_miss": None,
                        "border_energy": "border_energy_max", "atypical_attention": "atypical_k",
                        "low_confidence": "low_confidence_min"}
    assert all(s is None or s in FlagConfig.model_fields for s in settings.values())


def test_benjamini_hochberg_against_a_hand_computed_family() -> None:
    p = [0.01, 0.04, 0.03, 0.2, None, float("nan")]
    rejected, adjusted = benjamini_hochberg(p, q=0.05)
    # sorted 0.01, 0.03, 0.04, 0.2 (m = 4): 0.04, 0.06, 0.0533, 0.2 -> step-up minimum from the right
    np.testing.assert_allclose(adjusted[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert rejected.tolist() == [True, False, False, False, False, False] and np.isnan(adjusted[4:]).all()
    assert benjamini_hochberg([0.001, 0.002], q=0.05)[0].all()
    assert benjamini_hochberg([])[0].size == 0
