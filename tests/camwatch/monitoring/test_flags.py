"""Flag rules: thresholds, applicability, the atypical-attention rule and its reference fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from camwatch.monitoring.flags import FLAG_RULES, FlagConfig, FlagOutcome, by_severity, evaluate_flags
from camwatch.monitoring.heatmaps import heatmap_correlation
from camwatch.monitoring.reference import ATTENTION_CORRELATION, ReferenceSummary, StatRow, build_reference

A = np.array([[1.0, 2.0], [3.0, 4.0]])
REVERSED = A[::-1, ::-1]  # r(A, REVERSED) = -1


def _class_rows(c: int, n: int, maps: list[np.ndarray]) -> list[StatRow]:
    """centroid_x alternates 0.45/0.55 (mean 0.5, std 0.05), centroid_y 0.4/0.6 (mean 0.5, std 0.1),
    spread 0.2/0.3 (mean 0.25, std 0.05); heatmaps cycle through ``maps``."""
    return [
        StatRow(
            c,
            {
                "centroid_x": 0.45 + 0.1 * (i % 2),
                "centroid_y": 0.4 + 0.2 * (i % 2),
                "spread": 0.2 + 0.1 * (i % 2),
            },
            confidence=0.9,
            heatmap=maps[i % len(maps)],
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def reference() -> ReferenceSummary:
    # class 0: 40 identical maps A; class 1: a mix (so its reference correlations vary); class 5: 3 images
    return build_reference(
        _class_rows(0, 40, [A]) + _class_rows(1, 40, [A, A, A.T, A + 1.0]) + _class_rows(5, 3, [A])
    )


def _typical(**overrides: Any) -> dict[str, float | None]:
    stats: dict[str, float | None] = {
        "centroid_x": 0.5,
        "centroid_y": 0.5,
        "spread": 0.25,
        "energy_outside": 0.2,
        "pointing_hit": 1.0,
        "border_energy": 0.36,
    }
    stats.update(overrides)
    return stats


def _only(
    rule: str,
    stats: dict[str, float | None],
    *,
    confidence: float | None = 0.9,
    class_index: int = 0,
    heatmap: np.ndarray | None = A,
    reference: ReferenceSummary | None = None,
    config: FlagConfig | None = None,
) -> FlagOutcome | None:
    out = evaluate_flags(
        stats,
        confidence=confidence,
        class_index=class_index,
        native_heatmap=heatmap,
        reference=reference,
        config=config,
        rules=[rule],
    )
    assert len(out) <= 1
    return out[0] if out else None


# One flagged case per registered rule: keyword arguments of ``_only`` besides the rule.
CASES: dict[str, dict[str, Any]] = {
    "energy_outside": {"stats": _typical(energy_outside=0.7)},
    "pointing_miss": {"stats": _typical(pointing_hit=0.0)},
    "border_energy": {"stats": _typical(border_energy=0.8)},
    "atypical_attention": {"stats": _typical(centroid_x=0.7)},
    "low_confidence": {"stats": _typical(), "confidence": 0.05},
}


def test_every_registered_rule_has_a_case() -> None:
    assert set(CASES) == set(FLAG_RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_flags_its_case_and_passes_a_typical_image(rule: str, reference: ReferenceSummary) -> None:
    flagged = _only(rule, reference=reference, **CASES[rule])
    assert flagged is not None and flagged.rule == rule and flagged.flagged and flagged.severity > 0
    typical = _only(rule, _typical(), reference=reference)
    assert typical is not None and not typical.flagged and typical.severity <= 0


def test_energy_outside_threshold_and_severity() -> None:
    above = _only("energy_outside", _typical(energy_outside=0.7))
    assert above is not None and (above.rule, above.value, above.threshold, above.flagged) == (
        "energy_outside",
        0.7,
        0.5,
        True,
    )
    assert above.severity == pytest.approx(0.4)
    below = _only("energy_outside", _typical(energy_outside=0.3))
    assert below is not None and not below.flagged and below.severity == pytest.approx(-0.4)
    at = _only("energy_outside", _typical(energy_outside=0.5))
    assert at is not None and not at.flagged  # strictly above
    custom = _only("energy_outside", _typical(energy_outside=0.3), config=FlagConfig(energy_outside_max=0.25))
    assert custom is not None and custom.flagged


def test_region_rules_do_not_apply_without_a_region() -> None:
    no_region = _typical(energy_outside=None, pointing_hit=None)
    assert _only("energy_outside", no_region) is None
    assert _only("pointing_miss", no_region) is None
    assert _only("low_confidence", _typical(), confidence=None) is None
    rules = [
        o.rule
        for o in evaluate_flags(no_region, confidence=0.9, class_index=0, native_heatmap=None, reference=None)
    ]
    assert rules == ["border_energy", "low_confidence"]


def test_pointing_miss_reports_hit_and_miss() -> None:
    miss = _only("pointing_miss", _typical(pointing_hit=0.0))
    hit = _only("pointing_miss", _typical(pointing_hit=1.0))
    assert miss is not None and miss.flagged and miss.detail == "miss" and miss.severity == pytest.approx(1.0)
    assert hit is not None and not hit.flagged and hit.detail == "hit"


def test_uniform_border_share_is_not_flagged_by_default() -> None:
    out = _only("border_energy", _typical(border_energy=1 - 0.8**2))
    assert out is not None and not out.flagged and out.threshold == 0.6


def test_atypical_by_z_score(reference: ReferenceSummary) -> None:
    out = _only("atypical_attention", _typical(centroid_x=0.7), reference=reference)
    # z = (0.7 - 0.5) / 0.05 = 4 > 3
    assert out is not None and out.flagged and out.value == pytest.approx(4.0) and out.threshold == 3.0
    assert out.severity == pytest.approx(1 / 3) and "centroid_x z=+4.00 beyond" in out.detail
    assert "class 0 reference (n=40)" in out.detail
    spread = _only("atypical_attention", _typical(spread=0.05), reference=reference)  # z = -4
    assert spread is not None and spread.flagged and spread.value == pytest.approx(4.0)
    inside = _only("atypical_attention", _typical(centroid_y=0.75), reference=reference)  # z = 2.5
    assert inside is not None and not inside.flagged and inside.value == pytest.approx(2.5)
    wider = _only(
        "atypical_attention", _typical(centroid_x=0.7), reference=reference, config=FlagConfig(atypical_k=5)
    )
    assert wider is not None and not wider.flagged


def test_atypical_by_fixed_correlation_floor(reference: ReferenceSummary) -> None:
    # class 0's mean map is A; r(A.T, A) = 0.8 (hand-computed in test_reference)
    strict = _only(
        "atypical_attention",
        _typical(),
        heatmap=A.T,
        reference=reference,
        config=FlagConfig(atypical_min_correlation=0.9),
    )
    assert strict is not None and strict.flagged and strict.value == pytest.approx(0.0)
    assert strict.severity == pytest.approx(0.1) and "heatmap r=0.80 below 0.90" in strict.detail
    loose = _only(
        "atypical_attention",
        _typical(),
        heatmap=A.T,
        reference=reference,
        config=FlagConfig(atypical_min_correlation=0.5),
    )
    assert loose is not None and not loose.flagged


def test_atypical_correlation_floor_from_reference(reference: ReferenceSummary) -> None:
    # class 0's reference maps are identical: no spread of correlations, so only the z criteria apply
    same = _only("atypical_attention", _typical(), heatmap=REVERSED, reference=reference)
    assert same is not None and not same.flagged and "heatmap" not in same.detail
    s = reference.stat(ATTENTION_CORRELATION, 1)
    assert s is not None and s.mean is not None and s.std is not None and s.std > 0
    floor = s.mean - 3 * s.std
    mean_map = reference.heatmaps[1].data
    r_reversed = heatmap_correlation(REVERSED, mean_map)
    assert r_reversed is not None and r_reversed < floor < heatmap_correlation(A, mean_map)  # type: ignore[operator]
    odd = _only("atypical_attention", _typical(), heatmap=REVERSED, class_index=1, reference=reference)
    assert odd is not None and odd.flagged and f"below {floor:.2f}" in odd.detail
    usual = _only("atypical_attention", _typical(), heatmap=A, class_index=1, reference=reference)
    assert usual is not None and not usual.flagged


def test_atypical_falls_back_to_the_overall_reference(reference: ReferenceSummary) -> None:
    out = _only("atypical_attention", _typical(centroid_x=0.7), class_index=5, reference=reference)
    assert out is not None and out.flagged and "overall reference (class 5 has n=3 < 30)" in out.detail
    unseen = _only("atypical_attention", _typical(), class_index=9, reference=reference)
    assert unseen is not None and "overall reference (class 9 has n=0" in unseen.detail
    no_fallback = FlagConfig(atypical_fallback_to_overall=False)
    assert (
        _only("atypical_attention", _typical(), class_index=5, reference=reference, config=no_fallback)
        is None
    )
    assert _only("atypical_attention", _typical(), reference=None) is None
    tiny = build_reference(_class_rows(0, 10, [A]))
    assert _only("atypical_attention", _typical(), reference=tiny) is None


def test_flag_config_rejects_thresholds_that_cannot_work() -> None:
    with pytest.raises(ValueError, match=r"(?s)atypical_k\n.*greater than 0"):
        FlagConfig(atypical_k=0.0)
    with pytest.raises(ValueError, match=r"(?s)atypical_min_reference\n.*greater than or equal to 2"):
        FlagConfig(atypical_min_reference=1)
    with pytest.raises(ValueError, match="unknown flag rules \\['nope'\\]"):
        FlagConfig(rules=("energy_outside", "nope"))


def test_evaluate_flags_rejects_unknown_rules() -> None:
    with pytest.raises(ValueError, match="unknown flag rules"):
        evaluate_flags({}, confidence=0.9, class_index=0, native_heatmap=None, reference=None, rules=["nope"])


def test_by_severity_puts_the_worst_flag_first() -> None:
    mild = FlagOutcome("energy_outside", 0.55, 0.5, True, 0.1)
    bad = FlagOutcome("low_confidence", 0.1, 0.5, True, 0.8)
    fine = FlagOutcome("border_energy", 0.1, 0.6, False, -0.8)
    assert by_severity([fine, mild, bad]) == [bad, mild, fine]
