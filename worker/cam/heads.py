"""Classifier heads in torch: class scores (what gradients explain), probabilities and positive labels.

Definitions (one table for every layer): :mod:`camwatch.heads`. A model's raw outputs ``z`` (N, C) become
*scores* (N, C') — the logits themselves, or ``[−z, z]`` for a single-logit binary model — and the engine
explains ``score[n, target_n]``; probabilities are the head's function of the scores (for binary
heads ``σ([−z, z]) = [1 − p, p]``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from camwatch.heads import DEFAULT_HEAD_THRESHOLD, HEAD_KINDS


class HeadError(ValueError):
    """The head does not fit the model (e.g. ``binary`` on a model with several outputs)."""


class ModelOutputsError(HeadError):
    """The class names do not fit the model's outputs."""


class Head:
    key: ClassVar[str]

    def __init__(self, threshold: float = DEFAULT_HEAD_THRESHOLD) -> None:
        self.threshold = threshold

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def classifier_rows(self, weight: torch.Tensor) -> torch.Tensor:
        """Rows of a linear classifier ``W`` (C, K) in score space (one per score)."""
        return weight

    def positives(self, probs: torch.Tensor) -> list[list[int]] | None:
        """Per image, the positive labels by decreasing probability (multi-label heads only)."""
        return None


class SoftmaxHead(Head):
    key = "softmax"

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores, dim=1)


class SigmoidHead(Head):
    key = "sigmoid"

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores)

    def positives(self, probs: torch.Tensor) -> list[list[int]] | None:
        order = torch.sort(probs, dim=1, descending=True, stable=True)
        out = []
        for values, indices in zip(order.values.tolist(), order.indices.tolist(), strict=True):
            out.append([int(i) for v, i in zip(values, indices, strict=True) if v >= self.threshold])
        return out


class BinaryHead(Head):
    key = "binary"

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([-logits, logits], dim=1)

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores)

    def classifier_rows(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.cat([-weight, weight], dim=0)


HEAD_CLASSES: dict[str, type[Head]] = {cls.key: cls for cls in (SoftmaxHead, SigmoidHead, BinaryHead)}
assert tuple(HEAD_CLASSES) == HEAD_KINDS, "every head of camwatch.heads needs an implementation"


def make_head(key: str, threshold: float = DEFAULT_HEAD_THRESHOLD) -> Head:
    try:
        return HEAD_CLASSES[key](threshold)
    except KeyError:
        raise HeadError(f"unknown head {key!r}; choose one of {', '.join(HEAD_CLASSES)}") from None


def resolve_head(requested: str | None, n_outputs: int, source: str) -> str:
    """The head for a model with ``n_outputs`` logits: ``requested``, or softmax (binary for one logit)."""
    if requested is not None and requested not in HEAD_CLASSES:
        raise HeadError(f"unknown head {requested!r}; choose one of {', '.join(HEAD_CLASSES)}")
    if n_outputs == 1:
        if requested not in (None, "binary"):
            raise HeadError(f"{source}: the model has a single output logit; {requested} needs one logit per class. "
                            "A single logit is a binary classifier: use --head binary (the default for it)")
        return "binary"
    if requested == "binary":
        raise HeadError(f"{source}: --head binary needs a model with a single output logit; this one has "
                        f"{n_outputs} (use softmax or sigmoid)")
    return requested or "softmax"


def binary_class_names(given: list[str] | None, source: str) -> list[str]:
    """The two classes of a binary head: [negative, positive]; one given name is the positive class."""
    if given is None:
        return ["negative", "positive"]
    if len(given) == 1:
        return [f"not {given[0]}", given[0]]
    if len(given) == 2:
        return list(given)
    raise ModelOutputsError(f"{source}: a single-logit (binary) model has 2 classes, but the classes file lists "
                            f"{len(given)} names (give the positive class, or negative and positive)")

