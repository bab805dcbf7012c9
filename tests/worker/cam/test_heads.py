"""Sigmoid (multi-label) and single-logit binary heads on fixed-weight models whose maps are known exactly.

The model (:class:`tests.support.zoo_models.ChannelHead`) hooks the image itself (channel k on [0, 1]),
pools and applies a fixed linear layer, so for score ``s = ±Σ_k W_ck·mean(A_k) + b`` Grad-CAM is exactly
``ReLU(±Σ_k W_ck A_k) / (h·w)``. The test image is red on its left 10 of 16 columns, green on the right 6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from tests.support.zoo_models import channel_head_loaded
from worker.cam.engine import CamEngine
from worker.cam.models import ModelLoadError, load_model

SIZE = 16
RED_COLS = 10
IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def red_green(red_cols: int = RED_COLS) -> Image.Image:
    pixels = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    pixels[:, :red_cols, 0] = 255
    pixels[:, red_cols:, 1] = 255
    return Image.fromarray(pixels)


def region(red: bool, red_cols: int = RED_COLS) -> np.ndarray:
    """1/(h·w) on the red (or green) columns, 0 elsewhere."""
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    if red:
        out[:, :red_cols] = 1.0 / SIZE**2
    else:
        out[:, red_cols:] = 1.0 / SIZE**2
    return out


def test_sigmoid_head_probabilities_labels_and_maps_per_class():
    loaded = channel_head_loaded(IDENTITY, [-0.3, -0.3, -0.3], "sigmoid")
    engine = CamEngine(loaded, "gradcam", topk=3)
    top, green = engine.run_many(engine.prepare([red_green()])[0], [None, [1]])
    r = top[0]
    z = {0: RED_COLS / SIZE - 0.3, 1: (SIZE - RED_COLS) / SIZE - 0.3, 2: -0.3}
    assert r.predicted_class == 0 and r.target_class == 0
    assert r.topk_indices == [0, 1, 2]
    np.testing.assert_allclose(r.topk_probs, [sigmoid(z[c]) for c in (0, 1, 2)], rtol=1e-5)  # not summing to 1
    assert r.confidence == pytest.approx(sigmoid(z[0]), rel=1e-5)
    assert r.labels == [0, 1]  # p >= 0.5: red (0.58) and green (0.52), not blue (0.43)
    np.testing.assert_allclose(r.heatmap, region(red=True), atol=1e-7)
    assert green[0].target_class == 1 and green[0].labels == [0, 1]
    np.testing.assert_allclose(green[0].heatmap, region(red=False), atol=1e-7)
    strict = CamEngine(channel_head_loaded(IDENTITY, [-0.3, -0.3, -0.3], "sigmoid", threshold=0.55), "gradcam")
    assert strict.explain([red_green()])[0].labels == [0]
    nothing = CamEngine(channel_head_loaded(IDENTITY, [-1.0, -1.0, -1.0], "sigmoid"), "gradcam")
    assert nothing.explain([red_green()])[0].labels == []  # no class reaches the threshold


@pytest.mark.parametrize("red_cols,positive", [(RED_COLS, True), (SIZE - RED_COLS, False)])
def test_binary_head_probability_confidence_and_maps_of_both_classes(red_cols, positive):
    loaded = channel_head_loaded([[1.0, -1.0, 0.0]], [0.0], "binary")
    engine = CamEngine(loaded, "gradcam")
    image = red_green(red_cols)
    z = (red_cols - (SIZE - red_cols)) / SIZE  # mean(red) - mean(green)
    r = engine.explain([image])[0]
    assert r.predicted_class == (1 if positive else 0)
    assert r.confidence == pytest.approx(sigmoid(abs(z)), rel=1e-5) and r.confidence < 0.99  # not 1.0
    p_positive = dict(zip(r.topk_indices, r.topk_probs, strict=True))[1]
    assert p_positive == pytest.approx(sigmoid(z), rel=1e-5)
    assert r.target_logit == pytest.approx(abs(z), rel=1e-5)  # the explained score: z, or -z for class 0
    np.testing.assert_allclose(r.heatmap, region(red=True, red_cols=red_cols) if positive
                               else region(red=False, red_cols=red_cols), atol=1e-7)
    pos, neg = (engine.explain([image], targets=[c])[0] for c in (1, 0))
    np.testing.assert_allclose(pos.heatmap, region(red=True, red_cols=red_cols), atol=1e-7)  # map of +z
    np.testing.assert_allclose(neg.heatmap, region(red=False, red_cols=red_cols), atol=1e-7)  # map of -z
    assert pos.target_logit == pytest.approx(z, rel=1e-5) and neg.target_logit == pytest.approx(-z, rel=1e-5)


def test_binary_head_cam_uses_the_negated_classifier_for_the_negative_class():
    engine = CamEngine(channel_head_loaded([[1.0, -1.0, 0.0]], [0.0], "binary"), "cam")
    neg = engine.explain([red_green()], targets=[0])[0]
    np.testing.assert_allclose(neg.heatmap, region(red=False) * SIZE**2, atol=1e-6)  # CAM = h·w · Grad-CAM


def test_scorecam_uses_the_heads_probabilities():
    """Score-CAM weights of the binary head: σ(±z) of the input masked by each channel (the channels are the
    masks themselves: red, green, and an all-zero blue whose masked input scores z = 0)."""
    engine = CamEngine(channel_head_loaded([[1.0, -1.0, 0.0]], [0.0], "binary"), "scorecam")
    r = engine.explain([red_green()], targets=[1])[0]
    w_red, w_green = sigmoid(RED_COLS / SIZE), sigmoid(-(SIZE - RED_COLS) / SIZE)
    expected = np.zeros((SIZE, SIZE), dtype=np.float32)
    expected[:, :RED_COLS], expected[:, RED_COLS:] = w_red, w_green
    np.testing.assert_allclose(r.heatmap, expected, rtol=1e-5)


def test_single_logit_models_load_as_binary_with_two_classes(tmp_path):
    spec = "python:tests/support/zoo_models.py:binary_factory"
    loaded = load_model(spec)
    assert loaded.head == "binary" and loaded.class_names == ["negative", "positive"] and loaded.num_outputs == 1
    classes = tmp_path / "classes.txt"
    classes.write_text("defect\n")
    assert load_model(spec, classes=classes).class_names == ["not defect", "defect"]
    with pytest.raises(ModelLoadError, match="single output logit.*--head binary"):
        load_model(spec, head="softmax")
    with pytest.raises(ModelLoadError, match="needs a model with a single output logit; this one has 3"):
        load_model("python:tests/support/zoo_models.py:multilabel_factory", head="binary")
    multi = load_model("python:tests/support/zoo_models.py:multilabel_factory", head="sigmoid", head_threshold=0.6)
    assert (multi.head, multi.head_threshold, multi.class_names) == ("sigmoid", 0.6, ["red", "green", "blue"])
    with pytest.raises(ModelLoadError, match="strictly between 0 and 1"):
        load_model(spec, head_threshold=1.0)
