"""Drift tests with known answers, the minimum-sample rule, windows and window drift."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from scipy import stats

from camwatch.conventions import ALL_CLASSES
from camwatch.monitoring.drift import (
    DRIFT_TESTS,
    DriftOutcome,
    dataset_drift,
    default_test_for,
    get_test,
)
from camwatch.monitoring.reference import ATTENTION_CORRELATION, StatRow, build_reference
from camwatch.monitoring.windows import (
    HEATMAP_CORRELATION,
    PREDICTED_CLASS,
    assign_windows,
    compute_window_drift,
)

ASYMMETRIC = np.array([[1.0, 2.0], [3.0, 4.0]])
RNG_SAMPLE = np.random.default_rng(42).normal(size=200)
GRID = np.arange(100, dtype=float)  # deciles hold 0..9, 10..19, ...

# One drifting case per registered test: (reference, current, expected drifted).
CASES: dict[str, tuple[Any, Any, bool]] = {
    "ks": (RNG_SAMPLE, np.random.default_rng(7).normal(loc=2.0, size=200), True),
    "wasserstein": (GRID, GRID + 0.5 * np.std(GRID), True),
    "psi": (GRID, np.repeat(GRID, np.where(GRID < 50, 3, 1)), True),
    "jensen_shannon": ([0] * 30, [1] * 30, True),
    "chi2": ([0] * 50 + [1] * 30 + [2] * 20, [0] * 20 + [1] * 30 + [2] * 50, True),
    "class_mix": ([0] * 50 + [1] * 30 + [2] * 20, [0] * 20 + [1] * 30 + [2] * 50, True),
    "heatmap_correlation": (np.stack([ASYMMETRIC] * 30), np.stack([ASYMMETRIC.T] * 30), True),
}


def test_every_registered_test_has_a_case() -> None:
    assert set(CASES) == set(DRIFT_TESTS)


@pytest.mark.parametrize("key", sorted(CASES))
def test_registered_test_detects_its_case_and_not_identity(key: str) -> None:
    test = DRIFT_TESTS[key]
    reference, current, expected = CASES[key]
    outcome = test.run(reference, current)
    assert outcome.test == key and outcome.score is not None and outcome.drifted is expected
    assert outcome.threshold == test.threshold
    same = test.run(reference, reference)
    assert same.score is not None and not same.drifted
    assert test.kind in ("numeric", "categorical", "heatmap") and "drifted" in test.formula.lower()


def test_ks_identical_samples_give_p_one() -> None:
    out = get_test("ks").run(RNG_SAMPLE, RNG_SAMPLE)
    assert out.score == pytest.approx(1.0) and not out.drifted
    assert out.n_reference == 200 and out.n_current == 200


def test_ks_two_sigma_shift_is_drift() -> None:
    out = get_test("ks").run(*CASES["ks"][:2])
    assert out.score is not None and out.score < 1e-10 and out.drifted


def test_wasserstein_is_shift_over_reference_std() -> None:
    sigma = float(np.std(GRID))  # population std, sqrt((100^2 - 1) / 12)
    assert sigma == pytest.approx(math.sqrt((100**2 - 1) / 12))
    big = get_test("wasserstein").run(GRID, GRID + 0.5 * sigma)
    small = get_test("wasserstein").run(GRID, GRID + 0.05 * sigma)
    assert big.score == pytest.approx(0.5) and big.drifted
    assert small.score == pytest.approx(0.05) and not small.drifted


def test_wasserstein_constant_reference_uses_pooled_std() -> None:
    # W1 between all-0 and all-1 is 1; the pooled sample (half 0, half 1) has std 0.5
    out = get_test("wasserstein").run(np.zeros(50), np.ones(50))
    assert out.score == pytest.approx(2.0) and out.drifted and "constant" in out.detail
    same = get_test("wasserstein").run(np.zeros(50), np.zeros(40))
    assert same.score == 0.0 and not same.drifted


def test_psi_known_values() -> None:
    psi = get_test("psi")
    assert psi.run(GRID, GRID).score == 0.0
    # shares 0.15 in the five low deciles, 0.05 in the five high ones:
    # 5 * 0.05 ln 1.5 + 5 * (-0.05) ln 0.5 = 0.25 ln 3
    out = psi.run(*CASES["psi"][:2])
    assert out.score == pytest.approx(0.25 * math.log(3.0)) and out.drifted
    # everything in the first decile: nine empty bins get epsilon 1e-4
    allfirst = psi.run(GRID, np.zeros(30))
    expected = 0.9 * math.log(10.0) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert allfirst.score == pytest.approx(expected)
    # drift is score >= threshold: a score equal to the threshold drifts
    assert psi.run(*CASES["psi"][:2], threshold=out.score).drifted


def test_psi_merges_repeated_quantiles_for_discrete_values() -> None:
    ref = np.array([0.0] * 70 + [1.0] * 30)
    cur = np.array([0.0] * 30 + [1.0] * 70)
    out = get_test("psi").run(ref, cur)
    # bins (-inf, 0], (0, 1], (1, inf), the last empty in both: (0.3 - 0.7) ln(3/7) + (0.7 - 0.3) ln(7/3)
    assert out.score == pytest.approx(0.8 * math.log(7 / 3)) and "3 bins" in out.detail


def test_jensen_shannon_distance_known_values() -> None:
    js = get_test("jensen_shannon")
    assert js.run([0] * 30, [1] * 30).score == pytest.approx(1.0)
    assert js.run([0, 1] * 20, [1, 0] * 20).score == pytest.approx(0.0)
    # P = (1, 0), Q = (1/2, 1/2), M = (3/4, 1/4)
    kl_pm = math.log2(1 / 0.75)
    kl_qm = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    out = js.run([0] * 40, [0] * 20 + [1] * 20)
    assert out.score == pytest.approx(math.sqrt(0.5 * kl_pm + 0.5 * kl_qm))  # about 0.558
    assert out.drifted


def test_categorical_labels_drop_missing_and_accept_strings() -> None:
    out = get_test("jensen_shannon").run(["cat"] * 30, ["cat"] * 30 + [None, float("nan")])
    assert out.score == pytest.approx(0.0) and out.n_current == 30 and "dropped 2" in out.detail


def test_chi2_matches_the_formula() -> None:
    ref, cur = CASES["chi2"][:2]
    observed = np.array([[50, 30, 20], [20, 30, 50]], dtype=float)
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    out = get_test("chi2").run(ref, cur)
    assert out.score == pytest.approx(float(stats.chi2.sf(statistic, df=2)))
    assert get_test("chi2").run([3] * 40, [3] * 40).score == 1.0  # one label: nothing to test


def test_heatmap_correlation_test_with_own_transpose() -> None:
    out = get_test("heatmap_correlation").run(*CASES["heatmap_correlation"][:2])
    assert out.score == pytest.approx(0.8) and out.drifted  # 0.8 < 0.9
    assert not get_test("heatmap_correlation").run(*CASES["heatmap_correlation"][:2], threshold=0.75).drifted


def test_heatmap_test_drops_zero_maps_and_resamples_current() -> None:
    current = [np.ones((4, 4))] * 30 + [np.zeros((4, 4)), None]
    out = get_test("heatmap_correlation").run(np.stack([np.ones((2, 2))] * 30), current)
    assert out.score == 1.0 and out.n_current == 30 and "dropped 2" in out.detail


def test_min_sample_rule_never_alarms() -> None:
    far = np.full(29, 100.0)
    for key in ("ks", "wasserstein", "psi"):
        out = get_test(key).run(RNG_SAMPLE, far)
        assert out.score is None and not out.drifted and out.detail.startswith("not enough data (n=29")
    with_missing = [100.0] * 25 + [None] * 5 + [float("nan")] * 5
    out = get_test("ks").run(RNG_SAMPLE, with_missing)
    assert out.score is None and out.n_current == 25 and "dropped 10" in out.detail
    assert get_test("ks").run(RNG_SAMPLE, with_missing, min_samples=20).drifted
    small_ref = get_test("ks").run(RNG_SAMPLE[:10], far)
    assert small_ref.score is None and not small_ref.drifted  # the reference needs enough data too


def test_default_test_for_follows_evidently() -> None:
    assert default_test_for("numeric", 1000) == "ks"
    assert default_test_for("numeric", 1001) == "wasserstein"
    assert default_test_for("categorical", 10) == "class_mix"
    assert default_test_for("heatmap", 10) == "heatmap_correlation"
    with pytest.raises(ValueError, match="unknown drift kind"):
        default_test_for("text", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="registered: ks"):
        get_test("kolmogorov")


def _outcome(drifted: bool, score: float | None = 0.5) -> DriftOutcome:
    return DriftOutcome("ks", score, 0.05, drifted, 100, 100, "")


def test_dataset_drift_counts_only_tested_outcomes() -> None:
    untested = _outcome(False, None)
    assert dataset_drift([_outcome(True), _outcome(True), _outcome(False), _outcome(False), untested])
    assert not dataset_drift([_outcome(True), _outcome(False), _outcome(False), _outcome(False), untested])
    assert not dataset_drift([untested])
    assert dataset_drift([_outcome(True), _outcome(False), _outcome(False)], share=1 / 3)


# ---------------------------------------------------------------------------------------------- windows


def test_hour_windows_floor_in_utc() -> None:
    times = [
        datetime(2024, 5, 1, 10, 59, 59, 999999),
        datetime(2024, 5, 1, 10, 0),
        datetime(2024, 5, 1, 11, 0),
        datetime(2024, 5, 1, 13, 30, tzinfo=timezone(timedelta(hours=2))),
    ]
    windows, labels = assign_windows(times, "hour")
    assert [(w.start, w.end, w.n) for w in windows] == [
        (datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 1, 11, tzinfo=UTC), 2),
        (datetime(2024, 5, 1, 11, tzinfo=UTC), datetime(2024, 5, 1, 12, tzinfo=UTC), 2),
    ]
    assert labels.tolist() == [0, 0, 1, 1] and not any(w.partial for w in windows)


def test_day_windows_from_datetime64() -> None:
    times = np.array(
        ["2024-05-01T23:59:59", "2024-05-02T00:00:00", "2024-04-30T12:00"], dtype="datetime64[s]"
    )
    windows, labels = assign_windows(times, "day")
    assert [w.start.date().isoformat() for w in windows] == ["2024-04-30", "2024-05-01", "2024-05-02"]
    assert windows[0].end == datetime(2024, 5, 1, tzinfo=UTC)
    assert labels.tolist() == [1, 2, 0] and [w.index for w in windows] == [0, 1, 2]


def test_count_windows_follow_capture_order_and_mark_the_partial_chunk() -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    minutes = [6, 0, 5, 1, 4, 2, 3]
    windows, labels = assign_windows([base + timedelta(minutes=m) for m in minutes], "count", count=3)
    assert [w.n for w in windows] == [3, 3, 1] and [w.partial for w in windows] == [False, False, True]
    assert labels.tolist() == [2 if m == 6 else m // 3 for m in minutes]
    assert windows[1].start == base + timedelta(minutes=3) and windows[1].end == base + timedelta(minutes=5)
    assert windows[2].start == windows[2].end == base + timedelta(minutes=6)


def test_window_errors() -> None:
    with pytest.raises(ValueError, match="NaT"):
        assign_windows(np.array(["NaT", "2024-01-01"], dtype="datetime64[s]"), "hour")
    with pytest.raises(ValueError, match="count >= 1"):
        assign_windows([datetime(2024, 1, 1)], "count", count=0)
    with pytest.raises(ValueError, match="unknown window kind"):
        assign_windows([datetime(2024, 1, 1)], "week")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="neither a datetime"):
        assign_windows(["2024-01-01"], "hour")  # type: ignore[list-item]


# ------------------------------------------------------------------------------------------ window drift


def _blob(row: float, col: float) -> np.ndarray:
    ii, jj = np.mgrid[0:7, 0:7]
    return np.exp(-((ii - row) ** 2 + (jj - col) ** 2) / 2.0)


def _rows(n: int, c: int, gini_shift: float = 0.0, blob: tuple[float, float] = (2.0, 2.0)) -> list[StatRow]:
    rng = np.random.default_rng(c)
    return [
        StatRow(c, {"gini": float(v) + gini_shift}, confidence=0.9, heatmap=_blob(*blob))
        for v in rng.normal(size=n)
    ]


@pytest.fixture(scope="module")
def reference_rows() -> list[StatRow]:
    return _rows(60, 0) + _rows(60, 1, blob=(4.0, 4.0))


def test_window_identical_to_reference_does_not_drift(reference_rows: list[StatRow]) -> None:
    ref = build_reference(reference_rows)
    records = compute_window_drift(ref, reference_rows, statistics=["gini"])
    keys = {(r.statistic, r.class_index) for r in records}
    for c in (ALL_CLASSES, 0, 1):
        assert {("gini", c), (HEATMAP_CORRELATION, c)} <= keys
    assert (PREDICTED_CLASS, ALL_CLASSES) in keys
    assert not any(r.drifted for r in records)
    by_key = {(r.statistic, r.class_index): r for r in records}
    assert by_key[("gini", 0)].test == "ks" and by_key[("gini", 0)].score == pytest.approx(1.0)
    assert by_key[(HEATMAP_CORRELATION, 1)].score == pytest.approx(1.0)
    assert by_key[(PREDICTED_CLASS, ALL_CLASSES)].test == "class_mix"
    assert by_key[(PREDICTED_CLASS, ALL_CLASSES)].score == pytest.approx(1.0)  # p of identical mixes
    assert all(r.decision == "no_drift" for r in records)


def test_shifted_window_drifts_and_small_classes_are_left_out(reference_rows: list[StatRow]) -> None:
    ref = build_reference(reference_rows)
    window = _rows(40, 0, gini_shift=5.0, blob=(5.0, 1.0)) + _rows(10, 1)
    records = compute_window_drift(
        ref,
        window,
        statistics=["gini", ATTENTION_CORRELATION],
        tests={"gini": "psi"},
        thresholds={"heatmap_correlation": 0.95},
    )
    by_key = {(r.statistic, r.class_index): r for r in records}
    assert {c for _, c in by_key} == {ALL_CLASSES, 0}  # class 1 has 10 < 30 images in the window
    assert by_key[("gini", 0)].test == "psi" and by_key[("gini", 0)].drifted
    # every reference map of class 0 equals the class mean (r = 1); the moved blob correlates far less
    assert by_key[(ATTENTION_CORRELATION, 0)].test == "ks" and by_key[(ATTENTION_CORRELATION, 0)].drifted
    assert by_key[(HEATMAP_CORRELATION, 0)].drifted and by_key[(HEATMAP_CORRELATION, 0)].threshold == 0.95
    assert by_key[(PREDICTED_CLASS, ALL_CLASSES)].drifted  # 80% class 0 against 50%


def test_window_drift_rejects_bad_configuration(reference_rows: list[StatRow]) -> None:
    ref = build_reference(reference_rows)
    with pytest.raises(ValueError, match="needs a numeric test"):
        compute_window_drift(ref, reference_rows, statistics=["gini"], tests={"gini": "chi2"})
    with pytest.raises(ValueError, match="not in the reference"):
        compute_window_drift(ref, reference_rows, statistics=["entropy"])
    with pytest.raises(ValueError, match="not tested here"):
        compute_window_drift(ref, reference_rows, statistics=["gini"], tests={"entropy": "ks"})
    with pytest.raises(ValueError, match="unknown drift test 'heatmap_corr'"):
        compute_window_drift(ref, reference_rows, statistics=["gini"], thresholds={"heatmap_corr": 0.8})
    few = compute_window_drift(ref, reference_rows[:5], statistics=["gini"])
    assert {r.class_index for r in few} == {ALL_CLASSES}
    assert all(r.score is None and not r.drifted for r in few)
