"""Flag rules: is this image's attention in the wrong place?

Rules are registered under stable string keys (stored in the database; never rename one) in
:data:`FLAG_RULES`. A rule returns a :class:`FlagOutcome` or ``None`` when it does not apply to the image
(no object region, no confidence, no usable reference...). :func:`evaluate_flags` returns every applicable
outcome, flagged or not; the caller stores the flagged ones.

Severity: ``severity = margin / |threshold|`` where ``margin`` is how far the value lies beyond the threshold
in the flagging direction (positive when flagged, negative when not), so 0.5 means "50% past the
threshold" whatever the statistic's scale. Exceptions: a threshold of 0 divides by 1, and correlations
(bounded in [−1, 1]) use the plain margin. :func:`by_severity` orders outcomes for the dashboard.

Default thresholds (:class:`FlagConfig`) and why:

* ``energy_outside > 0.5``: most of the map's energy lies outside the object region.
* ``pointing_miss``: the pointing game missed (``pointing_hit`` is 1 for a hit, 0 for a miss; flagged when
  below 0.5).
* ``border_energy > 0.6``: a uniform map puts 36% of its energy in a 10% border band (``1 − 0.8²``); 0.6 means
  the band, a third of the image, holds well over half the energy: the model looks at the frame's edges.
* ``low_confidence < 0.1``: the model barely prefers its top-1 class. For a 1000-class ImageNet model 0.1 is
  already 100x chance, yet on the demo stream (composited real photos) the median top-1 probability is 0.44
  and 0.5 would flag 58% of normal images: a flag that fires on most images is ignored. Depends on the
  model's calibration and class count: tune it per deployment.
* ``atypical_attention``: centroid_x, centroid_y or spread beyond ``mean ± 3σ`` of the predicted class's
  reference, or the image's map correlating with the class's mean map below ``mean_r − 3σ_r`` of the
  reference images' own correlations (:data:`~camwatch.monitoring.reference.ATTENTION_CORRELATION`); a fixed floor can be
  set instead with ``atypical_min_correlation``. The class reference needs ``atypical_min_reference`` (30)
  images; otherwise the overall reference (all classes, wider, so only gross outliers fire) is used, and
  with neither the rule does not apply.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from camwatch.conventions import ALL_CLASSES
from camwatch.monitoring.heatmaps import heatmap_correlation, normalise_heatmap, resample_heatmap
from camwatch.monitoring.reference import ATTENTION_CORRELATION, ReferenceSummary

logger = logging.getLogger(__name__)

ATYPICAL_STATISTICS: tuple[str, ...] = ("centroid_x", "centroid_y", "spread")


@dataclass(frozen=True)
class FlagOutcome:
    """One rule's verdict on one image."""

    rule: str
    value: float
    threshold: float
    flagged: bool
    severity: float
    detail: str = ""


@dataclass(frozen=True)
class FlagInput:
    """What a rule may look at for one image."""

    stats: Mapping[str, float | None]
    confidence: float | None
    class_index: int
    heatmap: np.ndarray | None
    reference: ReferenceSummary | None


@dataclass(frozen=True)
class FlagRule:
    """A registered rule: ``flagged_when`` says whether values *above* or *below* the threshold flag;
    ``setting`` names the :class:`FlagConfig` field holding its threshold (None: fixed, not tunable), which
    reviews can suggest a new value for (:mod:`camwatch.monitoring.review`)."""

    key: str
    description: str
    flagged_when: Literal["above", "below"]
    evaluate: Callable[[FlagInput, FlagConfig], FlagOutcome | None]
    setting: str | None = None


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _threshold_outcome(rule: str, value: float, threshold: float, *, detail: str = "") -> FlagOutcome:
    """Flagged when ``value > threshold`` (rule flagged *above*) or ``value < threshold`` (*below*);
    severity as documented."""
    margin = value - threshold if FLAG_RULES[rule].flagged_when == "above" else threshold - value
    scale = abs(threshold) if threshold != 0.0 else 1.0
    return FlagOutcome(rule, value, threshold, margin > 0.0, margin / scale, detail)


def _energy_outside(inp: FlagInput, cfg: FlagConfig) -> FlagOutcome | None:
    value = _finite(inp.stats.get("energy_outside"))
    if value is None:
        return None
    return _threshold_outcome("energy_outside", value, cfg.energy_outside_max)


def _pointing_miss(inp: FlagInput, cfg: FlagConfig) -> FlagOutcome | None:
    value = _finite(inp.stats.get("pointing_hit"))
    if value is None:
        return None
    return _threshold_outcome("pointing_miss", value, 0.5, detail="hit" if value >= 0.5 else "miss")


def _border_energy(inp: FlagInput, cfg: FlagConfig) -> FlagOutcome | None:
    value = _finite(inp.stats.get("border_energy"))
    if value is None:
        return None
    return _threshold_outcome("border_energy", value, cfg.border_energy_max)


def _low_confidence(inp: FlagInput, cfg: FlagConfig) -> FlagOutcome | None:
    value = _finite(inp.confidence)
    if value is None:
        return None
    return _threshold_outcome("low_confidence", value, cfg.low_confidence_min)


def _reference_class(ref: ReferenceSummary, class_index: int, cfg: FlagConfig) -> tuple[int, str] | None:
    """The class whose reference judges this image: its own, else the overall one, else none."""
    n = ref.n_images(class_index)
    if n >= cfg.atypical_min_reference:
        return class_index, f"class {class_index} reference (n={n})"
    if cfg.atypical_fallback_to_overall and ref.n >= cfg.atypical_min_reference:
        return (
            ALL_CLASSES,
            f"overall reference (class {class_index} has n={n} < {cfg.atypical_min_reference})",
        )
    return None


def _correlation_floor(ref: ReferenceSummary, c: int, cfg: FlagConfig) -> float | None:
    if cfg.atypical_min_correlation is not None:
        return cfg.atypical_min_correlation
    s = ref.stat(ATTENTION_CORRELATION, c)
    if s is None or s.mean is None or not s.std or s.n < cfg.atypical_min_reference:
        return None  # no spread of reference correlations to scale by (as for z with std 0)
    return s.mean - cfg.atypical_k * s.std


def _atypical_attention(inp: FlagInput, cfg: FlagConfig) -> FlagOutcome | None:
    """Largest |z| of :data:`ATYPICAL_STATISTICS` against the reference (value, threshold k), or the map's
    correlation with the reference mean map below its floor; ``detail`` names what fired."""
    ref = inp.reference
    if ref is None:
        return None
    chosen = _reference_class(ref, inp.class_index, cfg)
    if chosen is None:
        return None
    c, basis = chosen
    k = cfg.atypical_k
    parts: list[str] = []
    z_max, severity = 0.0, -math.inf
    for name in ATYPICAL_STATISTICS:
        x, s = _finite(inp.stats.get(name)), ref.stat(name, c)
        if x is None or s is None or s.mean is None or not s.std:  # std 0 or None: z undefined, skip
            continue
        z = (x - s.mean) / s.std
        z_max = max(z_max, abs(z))
        severity = max(severity, (abs(z) - k) / k)
        parts.append(f"{name} z={z:+.2f}" + (f" beyond ±{k:g}" if abs(z) > k else ""))
    mean_map = ref.heatmaps.get(c)
    p = None if inp.heatmap is None or mean_map is None else normalise_heatmap(inp.heatmap)
    floor = None if p is None else _correlation_floor(ref, c, cfg)
    if p is not None and mean_map is not None and floor is not None:
        r = heatmap_correlation(resample_heatmap(p, mean_map.data.shape), mean_map.data)
        if r is not None:
            severity = max(severity, floor - r)
            parts.append(
                f"heatmap r={r:.2f}" + (f" below {floor:.2f}" if r < floor else f" (floor {floor:.2f})")
            )
    if not parts:
        return None
    return FlagOutcome("atypical_attention", z_max, k, severity > 0.0, severity, "; ".join([*parts, basis]))


FLAG_RULES: dict[str, FlagRule] = {
    rule.key: rule
    for rule in (
        FlagRule("energy_outside", "most CAM energy lies outside the object region", "above", _energy_outside,
                 "energy_outside_max"),
        FlagRule("pointing_miss", "the CAM's peak misses the object (pointing game)", "below", _pointing_miss),
        FlagRule("border_energy", "the CAM concentrates on the image border", "above", _border_energy,
                 "border_energy_max"),
        FlagRule("atypical_attention", "the CAM is unlike the predicted class's reference", "above",
                 _atypical_attention, "atypical_k"),
        FlagRule("low_confidence", "the top-1 probability is low", "below", _low_confidence,
                 "low_confidence_min"),
    )
}
#: Rules whose value flags when it lies *below* the threshold (severity and sorting depend on it).
FLAGGED_BELOW: frozenset[str] = frozenset(k for k, r in FLAG_RULES.items() if r.flagged_when == "below")


class FlagConfig(BaseModel):
    """Which flag rules run and their thresholds (see the module docstring for the reasoning behind each
    default). This is also the ``[flags]`` table of the settings: one definition of every threshold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    energy_outside_max: float = 0.5
    border_energy_max: float = 0.6
    low_confidence_min: float = 0.1
    atypical_k: Annotated[float, Field(gt=0)] = 3.0
    atypical_min_correlation: float | None = None  # None: mean_r − k·σ_r of the reference, per class
    atypical_min_reference: Annotated[int, Field(ge=2)] = 30
    atypical_fallback_to_overall: bool = True
    rules: tuple[str, ...] = Field(default_factory=lambda: tuple(FLAG_RULES))  # registry order

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [k for k in value if k not in FLAG_RULES]
        if unknown:
            raise ValueError(f"unknown flag rules {unknown}; registered: {', '.join(FLAG_RULES)}")
        return value




def evaluate_flags(
    stats: Mapping[str, float | None],
    *,
    confidence: float | None,
    class_index: int,
    native_heatmap: np.ndarray | None,
    reference: ReferenceSummary | None,
    config: FlagConfig | None = None,
    rules: Iterable[str] | None = None,
) -> list[FlagOutcome]:
    """Every applicable rule's outcome for one image, flagged or not, in the order of ``rules`` (default:
    ``config.rules``, all registered rules in registry order). Rules that do not apply are left out."""
    cfg = FlagConfig() if config is None else config
    keys = list(cfg.rules if rules is None else rules)
    unknown = [k for k in keys if k not in FLAG_RULES]
    if unknown:
        raise ValueError(f"unknown flag rules {unknown}; registered: {', '.join(FLAG_RULES)}")
    inp = FlagInput(stats, confidence, class_index, native_heatmap, reference)
    outcomes = (FLAG_RULES[k].evaluate(inp, cfg) for k in keys)
    return [o for o in outcomes if o is not None]


def by_severity(outcomes: Iterable[FlagOutcome]) -> list[FlagOutcome]:
    """Flagged outcomes first, each group from the most to the least severe (stable for ties)."""
    return sorted(outcomes, key=lambda o: (not o.flagged, -o.severity))
