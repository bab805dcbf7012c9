"""Encodings shared by every layer, each defined once: what "all classes" is, how a slice and a window
kind are written in the database, the review verdicts and their labels, the state vocabularies.

The database stores these strings; never rename one (add new ones instead).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

#: ``class_index`` of results over every predicted class (reference summaries, drift results).
ALL_CLASSES = -1
#: ``drift_results.slice`` of results over every image (else a :func:`slice_label`).
ALL_IMAGES = ""
#: Source name of the images under ``reference.folder`` (``reference.kind = "folder"``).
REFERENCE_SOURCE = "reference"

#: How an image becomes the model input (geometry in ``worker.cam.preprocess``; mapping back is exact).
PreprocessMode = Literal["resize", "letterbox", "center_crop"]
PREPROCESS_MODES: tuple[str, ...] = get_args(PreprocessMode)

IMAGE_STATUSES: tuple[str, ...] = ("pending", "processing", "ok", "error")
WORKER_STATES: tuple[str, ...] = ("starting", "running", "stopping", "stopped")
#: State of a queue source as last reported by its worker (``queue_status.state``).
QUEUE_STATES: tuple[str, ...] = ("connected", "disconnected", "stopped")
REFERENCE_KINDS: tuple[str, ...] = ("first_n", "time_range", "folder", "manual")


# ------------------------------------------------------------------------------------------------ slices


def slice_label(key: str, value: str) -> str:
    """The stored name of the slice of images whose tag ``key`` has ``value``: ``"key=value"``."""
    if not key or "=" in key:
        raise ValueError(f"tag key {key!r} cannot name a slice: it must be non-empty and contain no '='")
    return f"{key}={value}"


def parse_slice(label: str) -> tuple[str, str] | None:
    """``(key, value)`` of a :func:`slice_label`, or ``None`` for :data:`ALL_IMAGES` (every image)."""
    if label == ALL_IMAGES:
        return None
    key, sep, value = label.partition("=")
    if not sep or not key:
        raise ValueError(f"{label!r} is not a slice name: expected 'key=value' or '' (every image)")
    return key, value


# ------------------------------------------------------------------------------------------------ windows

WindowKind = Literal["hour", "day", "count"]
WINDOW_KINDS: tuple[str, ...] = ("hour", "day", "count")
_WINDOW_LABEL = re.compile(r"(hour|day)|count:([1-9][0-9]*)")


def window_kind_label(kind: str, count: int | None = None) -> str:
    """The stored window kind: ``"hour"``, ``"day"`` or ``"count:N"`` (N images per window)."""
    if kind == "count":
        if count is None or count < 1:
            raise ValueError(f"count windows need a count >= 1, got {count!r}")
        return f"count:{count}"
    if kind not in WINDOW_KINDS:
        raise ValueError(f"unknown window kind {kind!r}; expected one of {', '.join(WINDOW_KINDS)}")
    return kind


def parse_window_kind(label: str) -> tuple[WindowKind, int | None]:
    """``(kind, count)`` of a stored window kind (``count`` is None for time windows)."""
    match = _WINDOW_LABEL.fullmatch(label)
    if match is None:
        raise ValueError(f"window kind must be 'hour', 'day' or 'count:N', got {label!r}")
    if match.group(1):
        return match.group(1), None  # type: ignore[return-value]
    return "count", int(match.group(2))


# ------------------------------------------------------------------------------------------------ reviews


@dataclass(frozen=True)
class Verdict:
    """A reviewer's verdict on a flagged image: stable key, label for buttons, short label for lists, the
    keyboard shortcut of its button on the Review page, and what it says about the flag for a rule's
    precision: ``"tp"`` (the flag was right), ``"fp"`` (a false alarm) or None (not counted: a wrong label
    says the annotation is wrong, not whether the attention was; unsure says nothing)."""

    key: str
    label: str
    short: str
    shortcut: str
    counts_as: Literal["tp", "fp"] | None


VERDICTS: dict[str, Verdict] = {v.key: v for v in (
    Verdict("wrong_attention_confirmed", "Correct flag", "confirmed", "1", "tp"),
    Verdict("false_alarm", "False alarm", "false alarm", "2", "fp"),
    Verdict("wrong_label", "Wrong label", "wrong label", "3", None),
    Verdict("unsure", "Unsure", "unsure", "4", None),
)}
#: The verdict whose review carries the image's right label (it overrides the stored label for accuracy).
WRONG_LABEL = "wrong_label"
#: The verdict of images that looked at the wrong region, confirmed by a person (the curated export).
CONFIRMED = "wrong_attention_confirmed"
REVIEW_VERDICTS: tuple[str, ...] = tuple(VERDICTS)
#: Review status of a flagged image in the gallery: no review yet, or the latest verdict.
UNREVIEWED = "unreviewed"
REVIEW_STATUSES: tuple[str, ...] = (UNREVIEWED, *REVIEW_VERDICTS)


def review_status_label(status: str) -> str:
    """Short label of a review status (:data:`UNREVIEWED` or a verdict key)."""
    return VERDICTS[status].short if status in VERDICTS else status


# ------------------------------------------------------------------------------------------------ audit

#: Dashboard actions recorded in ``audit_events.action``, with their labels on the Image page.
AUDIT_ACTIONS: dict[str, str] = {
    "review": "reviewed",
    "reference_add": "added to the reference",
    "threshold.accept": "accepted a flag threshold from the reviews",
    "threshold.revert": "reverted a flag threshold to the settings' value",
    "alert.ack": "acknowledged an alert",
    "alert.silence": "silenced an alert's subject until a time",
}
#: ``alerts.state``: an alert episode is firing until its rule says the condition is over.
ALERT_STATES: tuple[str, ...] = ("firing", "resolved")
#: ``audit_events.actor`` of a dashboard without a login (bound to localhost by default).
LOCAL_ACTOR = "local (no login)"
#: ``audit_events.actor`` of a session opened with the shared password (it names nobody in particular).
PASSWORD_ACTOR = "password login"

#: Addresses that only this machine can reach: the dashboard's default and its safe bindings.
LOCAL_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1"})
