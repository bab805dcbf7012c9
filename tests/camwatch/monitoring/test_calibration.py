"""Calibrated drift decisions on analytic inputs: Benjamini-Hochberg, effect sizes, the pooled class-mix
test, reference-chunk thresholds and the decision of each record."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from camwatch.monitoring.calibration import (
    MIN_CHUNKS,
    benjamini_hochberg,
    calibrate_window,
    chunk_threshold,
    class_mix_test,
    explain,
    hierarchical_q,
    normalised_wasserstein,
    pooled_counts,
    total_variation,
)
from camwatch.monitoring.drift import DriftOutcome, get_test
from camwatch.monitoring.reference import StatRow, build_reference
from camwatch.monitoring.windows import PREDICTED_CLASS, DriftRecord, compute_window_drift


def test_bh_matches_scipy_false_discovery_control() -> None:
    p = np.random.default_rng(3).uniform(0, 0.1, 40) ** 2
    rejected, adjusted = benjamini_hochberg(list(p), q=0.01)
    expected = stats.false_discovery_control(p, method="bh")
    np.testing.assert_allclose(adjusted, expected)
    np.testing.assert_array_equal(rejected, expected <= 0.01)


def test_bh_leaves_missing_p_values_out_of_the_family() -> None:
    rejected, adjusted = benjamini_hochberg([0.01, None, 0.04, float("nan")], q=0.05)
    np.testing.assert_allclose(adjusted[[0, 2]], stats.false_discovery_control([0.01, 0.04]))
    assert math.isnan(adjusted[1]) and math.isnan(adjusted[3]) and not rejected[1] and not rejected[3]


def test_hierarchical_q_keeps_a_changed_slice_from_loosening_the_bar_for_the_others() -> None:
    groups = ["A"] * 10 + ["B"] * 10 + ["C"] * 10
    p = [1e-9] * 10 + [0.003] + [0.9] * 9 + [0.5] * 10
    flat = stats.false_discovery_control(p, method="bh")
    assert flat[10] <= 0.01  # one flat BH over the window: slice B's 0.003 rides on A's discoveries
    q = hierarchical_q(p, groups, 0.01)
    simes = [stats.false_discovery_control(p[k:k + 10], method="bh").min() for k in (0, 10, 20)]
    q_slice = stats.false_discovery_control(simes, method="bh")
    selected = int((q_slice <= 0.01).sum())
    assert selected == 1
    for k, g in enumerate((0, 10, 20)):
        within = stats.false_discovery_control(p[g:g + 10], method="bh") * 3 / selected
        np.testing.assert_allclose(q[g:g + 10], np.maximum(q_slice[k], np.minimum(within, 1.0)))
    assert (q[:10] <= 0.01).all() and q[10] > 0.01
    assert np.isnan(hierarchical_q([None, 0.2], ["A", "A"], 0.01)[0])


def test_normalised_wasserstein_of_a_pure_shift_is_the_shift_in_reference_sds() -> None:
    ref = np.random.default_rng(0).normal(3.0, 2.0, 500)
    effect, sd, pooled = normalised_wasserstein(ref, ref + 0.5 * ref.std())
    assert effect == pytest.approx(0.5) and sd == pytest.approx(ref.std()) and not pooled
    constant = np.ones(10)
    assert normalised_wasserstein(constant, constant)[0] == 0.0
    effect, sd, pooled = normalised_wasserstein(constant, np.full(10, 3.0))  # W1 = 2, pooled sd = 1
    assert pooled and sd == pytest.approx(1.0) and effect == pytest.approx(2.0)


def test_pooled_counts_keep_classes_the_window_expects_five_of() -> None:
    ref = np.array([0] * 50 + [1] * 30 + [2] * 15 + [3] * 5)
    cur = np.array([0] * 8 + [1] * 4 + [2] * 5 + [3] * 2 + [9] * 1)  # 20 images; class 9 never in the reference
    # expected in the window: 10, 6, 3, 1 (and 0): classes 0 and 1 keep their cells; the rest (4 expected)
    # is too small alone and joins class 1's cell
    r, c = pooled_counts(ref, cur)
    np.testing.assert_array_equal(r, [50, 50])
    np.testing.assert_array_equal(c, [8, 12])
    p, effect, cells = class_mix_test(ref, cur)
    expected = stats.chi2_contingency(np.array([[50, 50], [8, 12]]), correction=False).pvalue
    assert cells == 2 and p == pytest.approx(expected) and effect == pytest.approx(0.5 * (0.1 + 0.1))
    big = np.array([0] * 300 + [1] * 300)  # a window of 100 expects 50 of each: two cells, no "other"
    r, c = pooled_counts(np.array([0] * 50 + [1] * 50), big[:100])
    np.testing.assert_array_equal(r, [50, 50])
    assert total_variation(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_pooled_counts_keep_other_as_its_own_cell_when_it_is_large_enough() -> None:
    ref = np.array([0] * 60 + list(range(1, 41)))  # 40 rare classes, one image each
    cur = np.array([0] * 30 + list(range(1, 31)))
    r, c = pooled_counts(ref, cur)
    np.testing.assert_array_equal(r, [60, 40])
    np.testing.assert_array_equal(c, [30, 30])


def test_class_mix_is_calibrated_on_small_windows_of_many_classes_where_jensen_shannon_is_not() -> None:
    rng = np.random.default_rng(7)
    shares = 1.0 / np.arange(1, 1001)
    shares /= shares.sum()
    ref = rng.choice(1000, 300, p=shares)
    mix, js = get_test("class_mix"), get_test("jensen_shannon")
    draws = [rng.choice(1000, 60, p=shares) for _ in range(200)]
    mix_rate = np.mean([mix.run(ref, d).drifted for d in draws])
    js_rate = np.mean([js.run(ref, d).drifted for d in draws])
    assert js_rate > 0.9  # the small-sample bias issue 11 measured
    assert mix_rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_chunk_threshold_is_mean_plus_three_sd_of_leave_chunk_out_effects() -> None:
    ref = np.arange(60, dtype=float) ** 1.5

    def effect(rest: np.ndarray, chunk: np.ndarray) -> float:
        return abs(chunk.mean() - rest.mean())

    threshold, n = chunk_threshold(ref, 10, effect)  # type: ignore[misc]
    values = [abs(ref[k:k + 10].mean() - np.delete(ref, range(k, k + 10)).mean()) for k in range(0, 60, 10)]
    assert n == 6 and threshold == pytest.approx(np.mean(values) + 3 * np.std(values, ddof=1))
    assert chunk_threshold(ref, 13, effect) is None  # 4 chunks < MIN_CHUNKS
    assert MIN_CHUNKS == 5


def _record(p: float | None, effect: float | None, *, rule: str = "fdr_effect", raw: bool = False,
            effect_threshold: float = 0.2, score: float | None = 0.5) -> DriftRecord:
    outcome = DriftOutcome("ks", score, 0.05, raw, 100, 100, "", p, effect)
    return DriftRecord.from_outcome("gini", -1, outcome, rule=rule, effect_threshold=effect_threshold)


def test_calibrate_window_needs_significance_after_bh_and_a_large_effect() -> None:
    records = [_record(1e-6, 0.5), _record(1e-6, 0.05), _record(0.004, 0.5), _record(0.3, 2.0),
               _record(None, None, score=None), _record(None, 0.3, rule="threshold", raw=True),
               _record(0.9, 0.25, rule="reference_chunks", effect_threshold=0.2)]
    out = calibrate_window(records, fdr=0.01)
    q = stats.false_discovery_control([1e-6, 1e-6, 0.004, 0.3], method="bh")
    assert [r.q_value for r in out[:4]] == pytest.approx(list(q))
    # the third: p = 0.004 alone would pass 0.01, but q = 0.004 * 4 / 3 = 0.0053 still does
    assert [r.decision for r in out] == ["drifted", "no_drift", "drifted", "no_drift", "not_enough_data",
                                         "drifted", "drifted"]
    assert [r.drifted for r in out] == [d == "drifted" for d in (r.decision for r in out)]
    assert out[4].q_value is None and out[5].fdr is None and out[0].fdr == 0.01
    assert calibrate_window([replace(records[6], effect_size=0.2)])[0].decision == "no_drift"  # strictly above


def test_explain_says_why() -> None:
    assert "not enough data" in explain("not_enough_data", "fdr_effect", q_value=None, fdr=None, effect_size=None,
                                        effect_threshold=None, score=None, threshold=None)
    line = explain("drifted", "fdr_effect", q_value=0.0012, fdr=0.01, effect_size=0.45, effect_threshold=0.2,
                   score=1e-5, threshold=0.05)
    assert "q 0.0012" in line and "effect 0.45" in line and "0.2" in line


def _rows(n: int, shift: float = 0.0, seed: int = 0) -> list[StatRow]:
    rng = np.random.default_rng(seed)
    return [StatRow(int(c), {"gini": float(v) + shift}, confidence=0.9, heatmap=np.ones((3, 3)))
            for v, c in zip(rng.normal(size=n), rng.integers(0, 2, n), strict=True)]


def test_a_large_window_with_a_tiny_shift_is_significant_but_not_drifted() -> None:
    ref = build_reference(_rows(5000, seed=1))
    window = _rows(5000, shift=0.08, seed=2)
    gini = next(r for r in compute_window_drift(ref, window, statistics=["gini"], per_class=False)
                if r.statistic == "gini")
    assert gini.p_value is not None and gini.p_value < 1e-4 and gini.q_value is not None and gini.q_value < 0.01
    assert gini.effect_size == pytest.approx(0.08, abs=0.03) and not gini.drifted and gini.decision == "no_drift"
    moved = next(r for r in compute_window_drift(ref, _rows(200, shift=0.6, seed=3), statistics=["gini"],
                                                 per_class=False) if r.statistic == "gini")
    assert moved.drifted and moved.effect_threshold == 0.2 and moved.rule == "fdr_effect"


def test_reference_chunk_thresholds_are_selectable_per_statistic() -> None:
    rows = _rows(400, seed=4)
    ref = build_reference(rows)
    records = compute_window_drift(ref, _rows(50, seed=5), statistics=["gini"], per_class=False,
                                   chunk_statistics=["gini", PREDICTED_CLASS])
    by = {r.statistic: r for r in records}
    values = ref.stat("gini").values  # type: ignore[union-attr]
    expected = chunk_threshold(values, 50, lambda a, b: normalised_wasserstein(a, b)[0])
    assert expected is not None
    assert by["gini"].rule == "reference_chunks" and by["gini"].effect_threshold == pytest.approx(expected[0])
    assert by[PREDICTED_CLASS].rule == "reference_chunks" and not by["gini"].drifted
    assert by["heatmap_correlation"].rule == "threshold"
    shifted = {r.statistic: r for r in compute_window_drift(ref, _rows(50, shift=1.5, seed=6), statistics=["gini"],
                                                            per_class=False, chunk_statistics=["gini"])}
    assert shifted["gini"].drifted and shifted["gini"].q_value is None  # not in the BH family


def test_a_window_with_too_few_images_says_not_enough_data() -> None:
    ref = build_reference(_rows(200))
    records = compute_window_drift(ref, _rows(10, shift=5.0), statistics=["gini"])
    assert records and all(r.decision == "not_enough_data" and not r.drifted for r in records)


def test_drift_settings_carry_the_documented_defaults_and_refuse_unknown_tests() -> None:
    from pydantic import ValidationError

    from camwatch.settings import Settings

    d = Settings().drift
    assert (d.fdr, d.min_effect, d.min_mix_effect, d.chunk_statistics, d.tests) == (0.01, 0.2, 0.1, [], {})
    with pytest.raises(ValidationError, match="unknown drift test 'nope'"):
        Settings(drift={"tests": {"predicted_class": "nope"}})  # type: ignore[arg-type]
