"""Reference building: class split, heatmap averaging, sampling, serialisation, heatmap helpers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from camwatch.conventions import ALL_CLASSES
from camwatch.monitoring.heatmaps import (
    heatmap_correlation,
    loo_correlations,
    mean_normalised_heatmap,
    normalise_heatmap,
    resample_heatmap,
)
from camwatch.monitoring.reference import ATTENTION_CORRELATION, ReferenceSummary, StatRow, build_reference

ASYMMETRIC = np.array([[1.0, 2.0], [3.0, 4.0]])


def _row(c: int, gini: float | None, heatmap: np.ndarray | None = None, confidence: float = 0.9) -> StatRow:
    return StatRow(
        class_index=c,
        stats={"gini": gini},
        confidence=confidence,
        raw_max=1.0,
        raw_sum=2.0,
        target_logit=3.0,
        heatmap=heatmap,
    )


def test_class_split_counts_means_and_population_std() -> None:
    rows = [_row(0, 1.0), _row(0, 2.0), _row(0, 3.0), _row(2, 10.0), _row(2, None)]
    ref = build_reference(rows)
    assert ref.class_counts == {0: 3, 2: 2}
    assert ref.n == 5 and ref.n_images(ALL_CLASSES) == 5 and ref.n_images(2) == 2 and ref.n_images(7) == 0
    s0 = ref.stat("gini", 0)
    assert s0 is not None and s0.n == 3 and s0.mean == pytest.approx(2.0)
    assert s0.std == pytest.approx(math.sqrt(2.0 / 3.0))  # population std of 1, 2, 3
    s2 = ref.stat("gini", 2)
    assert s2 is not None and s2.n == 1 and s2.mean == 10.0 and s2.std == 0.0  # None is not a value
    overall = ref.stat("gini", ALL_CLASSES)
    assert overall is not None and overall.n == 4 and overall.mean == pytest.approx(4.0)
    assert ref.stat("confidence", 0) is not None  # engine values are statistics too
    assert ref.class_labels().tolist() == [0, 0, 0, 2, 2]


def test_statistic_with_only_missing_values_has_n_zero() -> None:
    ref = build_reference([_row(0, None), _row(0, float("nan"))])
    s = ref.stat("gini", 0)
    assert s is not None and s.n == 0 and s.mean is None and s.std is None and s.values.size == 0


def test_mean_heatmap_averages_normalised_maps_and_skips_zero_maps() -> None:
    a = 10.0 * np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 2.0]])
    rows = [_row(0, 1.0, a), _row(0, 1.0, b), _row(0, 1.0, np.zeros((2, 2))), _row(0, 1.0, None)]
    hm = build_reference(rows).heatmaps[0]
    # Each map weighs the same after h / sum(h): the raw mean would be dominated by ``a``.
    np.testing.assert_allclose(hm.data, [[0.5, 0.0], [0.0, 0.5]])
    assert hm.n == 2 and hm.n_zero == 1  # the missing map is neither averaged nor counted as zero


def test_class_whose_maps_are_all_zero_has_no_mean_heatmap() -> None:
    rows = [_row(0, 1.0, np.ones((2, 2))), _row(1, 1.0, np.zeros((2, 2)))]
    ref = build_reference(rows)
    assert 1 not in ref.heatmaps and 0 in ref.heatmaps
    assert ref.heatmaps[ALL_CLASSES].n == 1 and ref.heatmaps[ALL_CLASSES].n_zero == 1


def test_maps_on_other_grids_are_resampled_to_the_most_common_grid() -> None:
    peak = np.zeros((4, 4))
    peak[0, 0] = 1.0
    rows = [_row(0, 1.0, peak) for _ in range(3)] + [_row(0, 1.0, np.ones((2, 2)))]
    hm = build_reference(rows).heatmaps[0]
    assert hm.data.shape == (4, 4) and hm.n == 4
    # three peaks and one uniform map: (3 * peak + uniform / 16) / 4
    np.testing.assert_allclose(hm.data, (3 * peak + np.full((4, 4), 1 / 16)) / 4)


def test_resample_keeps_a_uniform_map_uniform_and_sums_to_one() -> None:
    out = resample_heatmap(np.full((7, 7), 1 / 49), (14, 14))
    np.testing.assert_allclose(out, np.full((14, 14), 1 / 196))
    np.testing.assert_array_equal(resample_heatmap(ASYMMETRIC / 10, (2, 2)), ASYMMETRIC / 10)  # same grid


def test_reservoir_cap_is_deterministic_and_keeps_exact_moments() -> None:
    values = np.arange(100, dtype=float)
    rows = [_row(0, v) for v in values]
    a = build_reference(rows, max_values=10, seed=0).stat("gini", 0)
    b = build_reference(rows, max_values=10, seed=0).stat("gini", 0)
    c = build_reference(rows, max_values=10, seed=1).stat("gini", 0)
    assert a is not None and b is not None and c is not None
    assert a.values.size == 10 and len(set(a.values.tolist())) == 10
    assert set(a.values.tolist()) <= set(values.tolist())
    assert np.all(np.diff(a.values) > 0)  # kept in row order
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.n == 100 and a.mean == pytest.approx(49.5) and a.std == pytest.approx(np.std(values))


def test_summary_round_trips_through_json() -> None:
    rng = np.random.default_rng(3)
    rows = [_row(i % 3, float(rng.normal()), rng.random((3, 4))) for i in range(40)]
    ref = build_reference(rows, max_values=8, seed=5)
    back = ReferenceSummary.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert back.class_counts == ref.class_counts and back.max_values == 8 and back.seed == 5
    assert back.stats.keys() == ref.stats.keys()
    for key, s in ref.stats.items():
        assert back.stats[key] == s
        np.testing.assert_array_equal(back.stats[key].values, s.values)
    for c, hm in ref.heatmaps.items():
        assert back.heatmaps[c] == hm
        np.testing.assert_array_equal(back.heatmaps[c].data, hm.data)


def test_from_dict_defaults_n_zero_and_rejects_bad_records() -> None:
    data = build_reference([_row(0, 1.0, np.ones((2, 2)))]).to_dict()
    for rec in data["heatmaps"]:
        del rec["n_zero"]
    assert ReferenceSummary.from_dict(data).heatmaps[0].n_zero == 0
    data["heatmaps"][0]["grid_w"] = 3
    with pytest.raises(ValueError, match="do not fill a 2x3 grid"):
        ReferenceSummary.from_dict(data)
    with pytest.raises(ValueError, match="version 99"):
        ReferenceSummary.from_dict({**data, "version": 99})


def test_build_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="zero rows"):
        build_reference([])
    with pytest.raises(ValueError, match="reserved"):
        build_reference([_row(-1, 1.0)])
    with pytest.raises(ValueError, match="clash"):
        build_reference([StatRow(0, {"confidence": 0.5})])
    with pytest.raises(ValueError, match="negative values"):
        build_reference([_row(0, 1.0, np.array([[1.0, -0.5], [0.0, 0.0]]))])


def test_heatmap_correlation_known_values() -> None:
    assert heatmap_correlation(ASYMMETRIC, ASYMMETRIC) == pytest.approx(1.0)
    # deviations (-1.5, -0.5, 0.5, 1.5) vs (-1.5, 0.5, -0.5, 1.5): covariance sum 4, variance sums 5 -> 0.8
    assert heatmap_correlation(ASYMMETRIC, ASYMMETRIC.T) == pytest.approx(0.8)
    one = np.array([[0.0, 1.0], [0.0, 0.0]])
    assert heatmap_correlation(one, one.T) == pytest.approx(-1.0 / 3.0)
    assert heatmap_correlation(7.0 * ASYMMETRIC, ASYMMETRIC / 10.0) == pytest.approx(1.0)  # scale-free


def test_heatmap_correlation_constant_and_zero_maps() -> None:
    assert heatmap_correlation(np.full((3, 3), 2.0), np.full((3, 3), 0.1)) == 1.0
    assert heatmap_correlation(np.full((2, 2), 1.0), ASYMMETRIC) == 0.0
    assert heatmap_correlation(np.zeros((2, 2)), ASYMMETRIC) is None
    with pytest.raises(ValueError, match="different grids"):
        heatmap_correlation(ASYMMETRIC, np.ones((3, 3)))


def test_normalise_and_mean_of_nothing() -> None:
    p = normalise_heatmap(ASYMMETRIC)
    assert p is not None
    np.testing.assert_allclose(p, ASYMMETRIC / 10.0)
    assert normalise_heatmap(np.zeros((2, 2))) is None
    assert mean_normalised_heatmap([None, np.zeros((2, 2))]) is None
    assert mean_normalised_heatmap([]) is None


def test_attention_correlation_is_leave_one_out() -> None:
    # Two maps: each one's leave-one-out mean is the other map, so both correlations are r(A, A.T) = 0.8.
    np.testing.assert_allclose(loo_correlations(np.stack([ASYMMETRIC, ASYMMETRIC.T])), [0.8, 0.8])
    assert np.isnan(loo_correlations(ASYMMETRIC[None])).all()
    ref = build_reference([_row(0, 1.0, ASYMMETRIC), _row(0, 1.0, ASYMMETRIC.T), _row(1, 1.0, ASYMMETRIC)])
    s0 = ref.stat(ATTENTION_CORRELATION, 0)
    s1 = ref.stat(ATTENTION_CORRELATION, 1)
    assert s0 is not None and s0.n == 2 and s0.mean == pytest.approx(0.8)
    assert s1 is not None and s1.n == 0  # a single map has no leave-one-out mean
