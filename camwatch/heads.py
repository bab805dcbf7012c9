"""Classifier heads and explanation targets: the definitions every layer shares (no torch).

Head keys are stored with every model version (``model_versions.head``); never rename one. For a model
with logits ``z`` (``C`` outputs):

========  =========================================  ===================================  =====================
head      probability of class ``c``                 predicted class, ``labels``          confidence
========  =========================================  ===================================  =====================
softmax   ``p_c = exp z_c / Σ_k exp z_k``             ``argmax p``; labels not stored      ``max_c p_c``
sigmoid   ``p_c = σ(z_c)``, independent per class    ``argmax p``; labels                 ``max_c p_c``
          (multi-label)                              ``{c : p_c ≥ t}`` by decreasing p
binary    one logit ``z``; two classes:              ``1`` when ``z > 0`` (``p > 0.5``),  ``max(p, 1 − p)``
          ``p_1 = σ(z)``, ``p_0 = 1 − σ(z)``          else ``0``; labels not stored        ∈ [0.5, 1]
========  =========================================  ===================================  =====================

``t`` is the multi-label threshold (setting ``head_threshold``, default 0.5). The explained *score* of a
class is its logit ``z_c``; a binary model's class 0 is explained by ``−z`` (the evidence against the
positive class), its class 1 by ``z``. ``top-k`` lists are ordered by decreasing probability (ties: lower
class index first).

Targets (setting ``target``): ``top1`` explains the predicted class; ``label`` the image's known label
(from its sidecar or path), falling back to the predicted class when the image has none; ``both`` stores
the predicted class's map as the primary heatmap and, when the label is known and differs, the label's map
as a second heatmap of the same image. The primary heatmap is the one statistics, flags, references and
drift use; every stored heatmap carries its own statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

HeadKind = Literal["softmax", "sigmoid", "binary"]
TargetMode = Literal["top1", "label", "both"]
TARGET_MODES: tuple[str, ...] = get_args(TargetMode)

#: Default multi-label threshold: a label is present when its probability is at least this.
DEFAULT_HEAD_THRESHOLD = 0.5
#: Class-mix label of a multi-label image with no class at or above the threshold.
NO_LABEL = -2


@dataclass(frozen=True)
class HeadInfo:
    key: str
    label: str
    probability: str
    confidence: str


HEADS: dict[str, HeadInfo] = {h.key: h for h in (
    HeadInfo("softmax", "Softmax (one label)", "softmax of the logits", "probability of the top-1 class"),
    HeadInfo("sigmoid", "Sigmoid (multi-label)", "sigmoid of each logit, independently",
             "probability of the most probable class"),
    HeadInfo("binary", "Binary (one logit)", "sigmoid of the logit for class 1, its complement for class 0",
             "probability of the predicted class, max(p, 1 − p)"),
)}
HEAD_KINDS: tuple[str, ...] = get_args(HeadKind)


def head_help() -> str:
    return "; ".join(f"{h.key}: {h.label}" for h in HEADS.values())


def mix_labels(class_index: int, labels: Sequence[int] | None) -> list[int]:
    """The labels one image contributes to the class mix: its positive labels (multi-label; :data:`NO_LABEL`
    when there are none), else its predicted class."""
    if labels is None:
        return [int(class_index)]
    return [int(c) for c in labels] or [NO_LABEL]


def is_correct(label_index: int | None, class_index: int, labels: Sequence[int] | None) -> bool | None:
    """Whether the prediction matches the known label: the predicted class equals it (softmax, binary), or
    the label is among the positive labels (multi-label). None when the label is unknown."""
    if label_index is None:
        return None
    if labels is not None:
        return int(label_index) in {int(c) for c in labels}
    return int(label_index) == int(class_index)
