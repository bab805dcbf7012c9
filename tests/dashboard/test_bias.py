"""The bias view and the per-rule review table on constructed samples (expected values from numpy/scipy)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from camwatch.monitoring.flags import FlagConfig
from camwatch.monitoring.review import wilson_interval
from camwatch.settings import ReviewSettings
from dashboard.bias import bias_view, cohens_d, mean_interval
from dashboard.review_stats import current_threshold, precision_table, suggestions


def _sample() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    values = np.repeat(["A", "B", "C"], 60)
    x = rng.normal(0.0, 1.0, values.size) + np.where(values == "A", 1.5, 0.0)  # A attends elsewhere
    brightness = rng.normal(100.0, 5.0, values.size) - np.where(values == "A", 20.0, 0.0)  # A is darker
    correct = np.where(values == "C", np.arange(values.size) % 2 == 0, True).astype(object)  # C: half wrong
    correct[::7] = None  # some images have no label
    return pd.DataFrame({"value": values, "class_index": np.arange(values.size) % 2, "correct": correct,
                         "border_energy": x, "brightness": brightness})


def test_cohens_d_and_the_mean_interval_match_the_textbook() -> None:
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    pooled = math.sqrt((3 * a.var(ddof=1) + 4 * b.var(ddof=1)) / 7)
    assert cohens_d(a, b) == pytest.approx((a.mean() - b.mean()) / pooled)
    low, high = mean_interval(a)
    assert (low, high) == pytest.approx(stats.t.interval(0.95, 3, loc=a.mean(), scale=stats.sem(a)))
    assert math.isnan(cohens_d(a[:1], b)) and cohens_d(np.ones(3), np.ones(4)) == 0.0


def test_the_slice_whose_attention_differs_comes_first_with_its_image_properties() -> None:
    sample = _sample()
    view = bias_view(sample, ["border_energy", "brightness"])
    table = view.table.set_index("group")
    assert list(view.table["group"])[0] == "A" and view.tests == 3 * 2 + 3
    a = sample[sample["value"] == "A"]["border_energy"].to_numpy()
    rest = sample[sample["value"] != "A"]["border_energy"].to_numpy()
    assert table.loc["A", "border_energy:d"] == pytest.approx(cohens_d(a, rest))
    assert table.loc["A", "border_energy:p"] == pytest.approx(stats.ttest_ind(a, rest, equal_var=False).pvalue)
    assert table.loc["A", "disparity"] == pytest.approx(abs(cohens_d(a, rest)))
    assert table.loc["A", "top_statistic"] == "border_energy"  # image properties do not make the disparity
    assert table.loc["A", "brightness:d"] < -2 and bool(table.loc["A", "brightness:significant"])
    # one odd slice makes the others differ from "the rest" too, but less: it stays first
    assert table.loc["A", "disparity"] > 2 * max(table.loc["B", "disparity"], table.loc["C", "disparity"])


def test_accuracy_per_slice_has_a_wilson_interval_and_an_exact_test() -> None:
    sample = _sample()
    table = bias_view(sample, ["border_energy"]).table.set_index("group")
    labelled = sample[(sample["value"] == "C") & sample["correct"].notna()]["correct"].astype(bool)
    assert table.loc["C", "accuracy"] == pytest.approx(labelled.mean())
    assert (table.loc["C", "acc_low"], table.loc["C", "acc_high"]) == pytest.approx(
        wilson_interval(int(labelled.sum()), labelled.size))
    assert bool(table.loc["C", "acc_significant"]) and table.loc["C", "acc_diff"] < -0.3
    assert table["accuracy"].idxmin() == "C"


def test_tag_by_class_groups_and_small_groups_are_left_out() -> None:
    view = bias_view(_sample(), ["border_energy"], by_class=True, class_names=["cat", "dog"])
    assert set(view.table["group"]) == {f"{v} × {c}" for v in "ABC" for c in ("cat", "dog")}
    assert len(bias_view(_sample().iloc[:15], ["border_energy"]).table) == 1  # B and C have no images


def test_precision_table_per_rule_and_per_slice() -> None:
    reviewed = pd.DataFrame({
        "image_id": range(6), "rule": ["energy_outside"] * 4 + ["low_confidence"] * 2,
        "value": [0.9, 0.8, 0.6, 0.7, 0.05, 0.08], "threshold": [0.5] * 4 + [0.1] * 2,
        "verdict": ["wrong_attention_confirmed", "wrong_attention_confirmed", "false_alarm", "wrong_label",
                    "false_alarm", "unsure"],
        "slice": ["cam-1", "cam-2", "cam-1", "cam-1", "cam-2", "cam-2"]})
    table = precision_table(reviewed, {"energy_outside": 40, "low_confidence": 9, "border_energy": 3}).set_index("rule")
    assert table.loc["energy_outside", ["reviewed", "confirmed", "false_alarms", "wrong_label"]].tolist() == [4, 2, 1, 1]
    assert table.loc["energy_outside", "precision"] == pytest.approx(2 / 3)
    assert table.loc["border_energy", "reviewed"] == 0 and math.isnan(table.loc["border_energy", "precision"])
    assert table.loc["low_confidence", "precision"] == 0.0 and table.loc["energy_outside", "flagged"] == 40
    per_slice = precision_table(reviewed, {}, by_slice=True)
    assert per_slice[["rule", "slice", "confirmed", "false_alarms"]].values.tolist() == [
        ["energy_outside", "cam-1", 1, 1], ["energy_outside", "cam-2", 1, 0], ["low_confidence", "cam-2", 0, 1]]
    found = suggestions(reviewed, FlagConfig(), ReviewSettings(min_reviews=2))
    assert found["energy_outside"].threshold == pytest.approx(0.7) and found["energy_outside"].reaches_target
    assert current_threshold("pointing_miss", FlagConfig()) is None
    assert current_threshold("low_confidence", FlagConfig(low_confidence_min=0.2)) == 0.2


def test_constant_slices_differ_with_certainty_without_a_warning() -> None:
    sample = pd.DataFrame({"value": ["A"] * 20 + ["B"] * 20, "class_index": 0, "correct": None,
                           "width": [800.0] * 20 + [640.0] * 20, "height": [600.0] * 40})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = bias_view(sample, ["width", "height"], attention=["width"]).table.set_index("group")
    assert table.loc["A", "width:d"] == math.inf and table.loc["A", "width:p"] == 0.0
    assert bool(table.loc["A", "width:significant"]) and math.isnan(table.loc["A", "height:p"])
