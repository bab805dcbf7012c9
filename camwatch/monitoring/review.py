"""What reviews say about a flag rule: its precision with a confidence interval, and the threshold that
would have reached a target precision on the reviewed flags.

Conventions
-----------
* Only verdicts with a ``counts_as`` (:data:`camwatch.conventions.VERDICTS`) count: a *correct flag* is a
  true positive, a *false alarm* a false positive; *wrong label* and *unsure* are not counted. An image's
  latest review is its verdict.
* Precision ``= tp / (tp + fp)`` with the 95 % **Wilson score interval** (Wilson 1927), which stays inside
  ``[0, 1]`` and keeps a sensible width for small counts and for 0 or 100 % (where the normal
  approximation collapses to a point): ``(p̂ + z²/2n ± z·sqrt(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n)``,
  ``z = 1.95996``.
* Suggested threshold (:func:`suggest_threshold`): reviews only exist for flagged images, so only a
  *stricter* threshold can be judged (what a looser one would add was never reviewed). Among the current
  threshold and every cut between two consecutive distinct reviewed values beyond it, the **least strict**
  threshold whose precision on the reviewed flags it keeps reaches ``target_precision`` (0.9 by default),
  among those keeping at least half of ``min_reviews`` counted reviews (a cut that keeps one lucky flag
  proves nothing), is suggested; it is the current threshold when that already does. A cut lies strictly
  between the two values, written with the fewest decimals that do. With fewer than ``min_reviews``
  counted reviews there is no suggestion; when no cut reaches the target, the most precise cut is
  reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from camwatch.monitoring.calibration import benjamini_hochberg
from camwatch.monitoring.flags import FlagConfig

__all__ = ["benjamini_hochberg", "wilson_interval", "suggest_threshold", "apply_overrides", "Precision", "Suggestion"]

CONFIDENCE = 0.95
Z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``successes / n`` (module docstring); None for ``n = 0``."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return None
    z = Z if confidence == CONFIDENCE else float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - half) / denominator), min(1.0, (centre + half) / denominator)


@dataclass(frozen=True)
class Precision:
    """Counted reviews of a rule (or a rule in a slice): true and false positives, precision and its CI."""

    tp: int
    fp: int

    @property
    def reviewed(self) -> int:
        return self.tp + self.fp

    @property
    def value(self) -> float | None:
        return self.tp / self.reviewed if self.reviewed else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.tp, self.reviewed)


@dataclass(frozen=True)
class Suggestion:
    """A threshold for a rule from its reviews. ``threshold`` is None when there are too few reviews;
    ``reaches_target`` says whether its precision on the reviewed flags reaches the target."""

    threshold: float | None
    current: float
    precision: Precision | None  # of the reviewed flags the suggested threshold keeps
    reaches_target: bool
    reason: str

    @property
    def changes(self) -> bool:
        return self.threshold is not None and self.threshold != self.current


def _cut_between(low: float, high: float) -> float:
    """A number strictly between ``low < high``, near their midpoint, with the fewest decimals."""
    middle = (low + high) / 2
    for decimals in range(0, 16):
        cut = round(middle, decimals)
        if low < cut < high:
            return cut
    return middle


def _kept(values: np.ndarray, cut: float, flagged_when: str) -> np.ndarray:
    return values > cut if flagged_when == "above" else values < cut


def suggest_threshold(tp_values: Sequence[float | None], fp_values: Sequence[float | None], current: float,
                      flagged_when: Literal["above", "below"], *, target_precision: float = 0.9,
                      min_reviews: int = 10) -> Suggestion:
    """The least strict threshold at least as strict as ``current`` whose precision on the reviewed flags
    reaches ``target_precision`` (module docstring). ``tp_values``/``fp_values`` are the flags' values
    of the images reviewed as correct flag / false alarm; those the current threshold would no longer
    flag (it was made stricter since) are left out."""
    tp = np.asarray([v for v in tp_values if v is not None and math.isfinite(v)], dtype=np.float64)
    fp = np.asarray([v for v in fp_values if v is not None and math.isfinite(v)], dtype=np.float64)
    values = np.concatenate([tp, fp])
    truth = np.concatenate([np.ones(tp.size, bool), np.zeros(fp.size, bool)])
    flagged = _kept(values, current, flagged_when)
    values, truth = values[flagged], truth[flagged]
    if values.size < min_reviews:
        return Suggestion(None, current, None, False,
                          f"{values.size} counted reviews; a suggestion needs {min_reviews}")
    distinct = np.unique(values)  # ascending
    pairs = list(zip(distinct[:-1], distinct[1:], strict=True))
    if flagged_when == "above":  # stricter = higher: from the lowest cut up
        cuts = [current, *(_cut_between(float(a), float(b)) for a, b in pairs)]
    else:  # stricter = lower: from the highest cut down
        cuts = [current, *(_cut_between(float(a), float(b)) for a, b in reversed(pairs))]
    best: tuple[float, Precision] | None = None
    for cut in cuts:  # from the least to the most strict
        keep = _kept(values, cut, flagged_when)
        counted = Precision(int(truth[keep].sum()), int((~truth[keep]).sum()))
        if counted.tp == 0 or counted.reviewed < max(1, min_reviews // 2):
            break  # stricter cuts keep fewer still
        value = counted.value or 0.0
        if value >= target_precision:
            reason = ("the current threshold already reaches the target precision" if cut == current else
                      f"the least strict threshold reaching {target_precision:.0%} precision on the "
                      "reviewed flags")
            return Suggestion(cut, current, counted, True, reason)
        if best is None or value > (best[1].value or 0.0):
            best = (cut, counted)
    if best is None:
        return Suggestion(None, current, None, False, "no reviewed flag was confirmed")
    return Suggestion(best[0], current, best[1], False,
                      f"no threshold reaches {target_precision:.0%} precision; this one is the most precise")


def apply_overrides(config: FlagConfig, overrides: Mapping[str, float]) -> FlagConfig:
    """``config`` with accepted thresholds (setting name -> value) replacing its own; unknown settings are
    refused, naming them."""
    unknown = sorted(set(overrides) - set(FlagConfig.model_fields))
    if unknown:
        raise ValueError(f"accepted thresholds for unknown flag settings {unknown}")
    return config.model_copy(update=dict(overrides)) if overrides else config
