"""The label an image is judged by: a reviewer's correction overrides the stored one.

A review with the 'wrong label' verdict (:data:`camwatch.conventions.WRONG_LABEL`) carries the image's right
label. The latest such review of an image wins, whatever verdicts follow it (a later "correct flag" is
about the attention, not the label). The prediction is then correct when the corrected label names the
predicted class (``reviews.label_index = predictions.class_index``), and wrong otherwise, including when
the right label is not one of the model's classes (``label_index`` NULL). Without a correction,
``predictions.correct`` (set from the sidecar or annotation label) stands.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.sql import ColumnElement, Subquery

from camwatch.conventions import WRONG_LABEL
from db.models import Prediction, Review


def corrected_labels() -> Subquery:
    """Per image with a 'wrong label' review: ``image_id``, ``label`` and ``label_index`` of the latest one."""
    latest = (select(Review.image_id, func.max(Review.id).label("review_id"))
              .where(Review.verdict == WRONG_LABEL).group_by(Review.image_id).subquery("latest_label_review"))
    return (select(latest.c.image_id, Review.label, Review.label_index)
            .join(Review, Review.id == latest.c.review_id).subquery("corrected_labels"))


def effective_correct(corrected: Subquery) -> ColumnElement[Any]:
    """Whether the prediction is right by the corrected label when there is one, else
    ``predictions.correct`` (NULL: unknown). ``corrected`` is :func:`corrected_labels`, outer-joined."""
    return case((corrected.c.image_id.is_not(None),
                 func.coalesce(corrected.c.label_index == Prediction.class_index, False)),
                else_=Prediction.correct)
