"""Alert rules, registered by stable key: each turns :class:`~camwatch.alerts.facts.AlertFacts` into one
:class:`Evaluation` per subject, with the value, the threshold and an explicit decision.

========================  ===============================================================================
key                       fires when
========================  ===============================================================================
``drift``                 the stored decision of the newest ``consecutive_windows`` windows of a statistic
                          (every image, per tested slice, optionally per class) is ``drifted``
``flagged_share``         more than ``max_share`` of the images of the newest ``window_minutes`` (capture
                          time) are flagged, overall or per slice, with at least ``min_images`` images
``error_rate``            more than ``max_rate`` of those images failed
``source_silent``         a source registered no new image for ``after_minutes``
``heartbeat_missing``     a worker that did not stop cleanly wrote no heartbeat for ``after_seconds``
========================  ===============================================================================

Decisions: ``firing``, ``ok`` (resolves a firing alert) or ``no_data`` (too few images: the alert's state
is left as it is, neither fired nor resolved).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from camwatch.alerts.config import AlertSettings
from camwatch.alerts.facts import AlertFacts, DriftFact
from camwatch.conventions import ALL_CLASSES, ALL_IMAGES
from camwatch.monitoring.drift import DRIFT_TESTS
from camwatch.statistics.registry import STATISTICS

Decision = Literal["firing", "ok", "no_data"]
DECISIONS: tuple[str, ...] = ("firing", "ok", "no_data")


@dataclass(frozen=True)
class Subject:
    """What an alert is about. ``target`` names a source or a worker (rules that are not about images)."""

    statistic: str | None = None
    class_index: int | None = None
    slice: str = ALL_IMAGES
    target: str | None = None

    @property
    def key(self) -> str:
        """The stable identity of the subject within a rule (deduplication key)."""
        parts = [f"statistic={self.statistic}" if self.statistic else "",
                 f"class={self.class_index}" if self.class_index not in (None, ALL_CLASSES) else "",
                 f"slice={self.slice}" if self.slice else "", f"target={self.target}" if self.target else ""]
        return ";".join(p for p in parts if p) or "all"

    @property
    def where(self) -> str:
        """Human prefix of a summary: ``camera=cam-2``, ``class 3``, ``all images``, ``source cams``."""
        if self.target is not None:
            return self.target
        bits = [self.slice] if self.slice else []
        if self.class_index not in (None, ALL_CLASSES):
            bits.append(f"class {self.class_index}")
        return ", ".join(bits) or "all images"


@dataclass(frozen=True)
class Evaluation:
    rule: str
    subject: Subject
    value: float | None
    threshold: float | None
    decision: Decision
    summary: str
    since: dt.datetime | None = None  # when the condition began (drift: the first drifted window)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def firing(self) -> bool:
        return self.decision == "firing"


def statistic_label(statistic: str) -> str:
    """"energy outside the object"-style lower-case label of a statistic (its key when unknown)."""
    spec = STATISTICS.get(statistic)
    label = spec.label if spec is not None else statistic.replace("_", " ")
    return label[:1].lower() + label[1:] if label[:2] != label[:2].upper() else label


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def drift_strength(test: str, score: float | None, threshold: float | None) -> float:
    """A result's score over its threshold on the test's "up is worse" scale
    (:meth:`camwatch.monitoring.drift.DriftTest.strength`: ``-log10 p`` for p-values, ``1 - r`` for
    similarities): above 1 beyond the threshold, whatever the test; 0 when unknown."""
    spec = DRIFT_TESTS.get(test)
    if score is None or threshold is None or score != score:
        return 0.0
    if spec is None:
        return score / threshold if threshold else 0.0
    limit = spec.strength(threshold)
    return spec.strength(score) / limit if limit > 0 else 0.0


def _strength(f: DriftFact) -> float:
    return drift_strength(f.test, f.score, f.threshold)


def _drift(facts: AlertFacts, settings: AlertSettings) -> list[Evaluation]:
    cfg = settings.drift
    wanted = set(cfg.statistics)
    by_subject: dict[Subject, dict[dt.datetime, list[DriftFact]]] = defaultdict(lambda: defaultdict(list))
    for f in facts.drift:
        if (wanted and f.statistic not in wanted) or (f.slice and not cfg.per_slice) \
                or (f.class_index != ALL_CLASSES and not cfg.per_class):
            continue
        by_subject[Subject(f.statistic, f.class_index, f.slice)][f.window_start].append(f)
    out = []
    for subject, windows in sorted(by_subject.items(), key=lambda kv: kv[0].key):
        starts = sorted(windows)
        decided = [any(t.drifted for t in windows[s]) for s in starts]
        newest = windows[starts[-1]]
        worst = max(newest, key=_strength)
        run = 0
        for drifted in reversed(decided):
            if not drifted:
                break
            run += 1
        firing = run >= cfg.consecutive_windows
        since = starts[len(starts) - run] if run else None
        label = statistic_label(subject.statistic or "")
        ctx = facts.drift_context.get((subject.statistic or "", subject.slice, starts[-1]))
        if firing:
            text = f"{subject.where}: {label}"
            if ctx is not None and ctx.reference_mean is not None and ctx.current_mean is not None:
                verb = "rose" if ctx.current_mean > ctx.reference_mean else "fell"
                text += f" {verb} from {_fmt(ctx.reference_mean)} to {_fmt(ctx.current_mean)}"
            else:
                text += f" drifted ({worst.test} {_fmt(worst.score)} beyond {_fmt(worst.threshold)})"
            text += f" since {since:%Y-%m-%d}" if since is not None else ""
            if ctx is not None and ctx.flagged_share is not None:
                text += f"; {ctx.flagged_share * 100:.0f} % of its images flagged"
        else:
            text = f"{subject.where}: {label} within its reference in the window of {starts[-1]:%Y-%m-%d %H:%M}"
        out.append(Evaluation("drift", subject, worst.score, worst.threshold, "firing" if firing else "ok", text,
                              since, {"test": worst.test, "strength": round(_strength(worst), 4),
                                      "window_start": starts[-1].isoformat(),
                                      "window_end": worst.window_end.isoformat(), "drifted_windows": run}))
    return out


def _share_rule(rule: str, facts: AlertFacts, limit: float, min_images: int, per_slice: bool,
                part: Callable[[Any], tuple[int, int]], noun: str) -> list[Evaluation]:
    out = []
    for s in facts.shares:
        if s.slice and not per_slice:
            continue
        count, total = part(s)
        subject = Subject(slice=s.slice)
        window = f"{s.start:%Y-%m-%d %H:%M}–{s.end:%H:%M} UTC"
        if total < min_images:
            out.append(Evaluation(rule, subject, None if total == 0 else count / total, limit, "no_data",
                                  f"{subject.where}: {total} images in {window}, fewer than {min_images}",
                                  details={"images": total}))
            continue
        value = count / total
        firing = value > limit
        text = (f"{subject.where}: {value * 100:.0f} % of {total} images {noun} in {window} "
                f"({'above' if firing else 'within'} {limit * 100:.0f} %)")
        out.append(Evaluation(rule, subject, value, limit, "firing" if firing else "ok", text, s.start if firing
                              else None, {"images": total, "count": count}))
    return out


def _flagged_share(facts: AlertFacts, settings: AlertSettings) -> list[Evaluation]:
    c = settings.flagged_share
    return _share_rule("flagged_share", facts, c.max_share, c.min_images, c.per_slice,
                       lambda s: (s.flagged, s.ok), "flagged")


def _error_rate(facts: AlertFacts, settings: AlertSettings) -> list[Evaluation]:
    c = settings.error_rate
    return _share_rule("error_rate", facts, c.max_rate, c.min_images, False,
                       lambda s: (s.errors, s.done), "failed")


def _ago(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 \
        else f"{seconds:.0f} s"


def _source_silent(facts: AlertFacts, settings: AlertSettings) -> list[Evaluation]:
    limit = settings.source_silent.after_minutes * 60
    out = []
    for s in facts.sources:
        age = (facts.now - s.last_image_at).total_seconds()
        firing = age > limit
        subject = Subject(target=f"source {s.source}")
        out.append(Evaluation("source_silent", subject, age, limit, "firing" if firing else "ok",
                              f"{subject.where}: no new image for {_ago(age)} (last {s.last_image_at:%Y-%m-%d %H:%M} "
                              f"UTC; limit {_ago(limit)})", s.last_image_at if firing else None))
    return out


def heartbeat_limit(settings: AlertSettings, dead_after_seconds: float) -> float:
    return settings.heartbeat_missing.after_seconds or dead_after_seconds


def _heartbeat(facts: AlertFacts, settings: AlertSettings, dead_after_seconds: float) -> list[Evaluation]:
    limit = heartbeat_limit(settings, dead_after_seconds)
    out = []
    for h in facts.heartbeats:
        age = (facts.now - h.last_seen_at).total_seconds()
        firing = h.state != "stopped" and age > limit
        subject = Subject(target=f"worker {h.worker_id}")
        text = (f"{subject.where} on {h.hostname}: no heartbeat for {_ago(age)} (state {h.state}; limit "
                f"{_ago(limit)})" if firing else f"{subject.where} on {h.hostname}: {h.state}, last heartbeat "
                f"{_ago(age)} ago")
        out.append(Evaluation("heartbeat_missing", subject, age, limit, "firing" if firing else "ok", text,
                              h.last_seen_at if firing else None, {"state": h.state}))
    return out


@dataclass(frozen=True)
class AlertRule:
    key: str
    description: str
    evaluate: Callable[[AlertFacts, AlertSettings, float], list[Evaluation]]


RULES: dict[str, AlertRule] = {r.key: r for r in (
    AlertRule("drift", "a statistic's stored drift decision in its newest window(s)",
              lambda f, s, _d: _drift(f, s)),
    AlertRule("flagged_share", "share of flagged images over the newest window",
              lambda f, s, _d: _flagged_share(f, s)),
    AlertRule("error_rate", "share of failed images over the newest window", lambda f, s, _d: _error_rate(f, s)),
    AlertRule("source_silent", "no new image from a source for a while", lambda f, s, _d: _source_silent(f, s)),
    AlertRule("heartbeat_missing", "a worker's heartbeat is missing", _heartbeat),
)}


def enabled_rules(settings: AlertSettings) -> list[str]:
    return [key for key in RULES if getattr(settings, key).enabled]


def evaluate(facts: AlertFacts, settings: AlertSettings, *, dead_after_seconds: float = 60.0) -> list[Evaluation]:
    """Every enabled rule's evaluations of ``facts``."""
    return [e for key in enabled_rules(settings) for e in RULES[key].evaluate(facts, settings, dead_after_seconds)]
