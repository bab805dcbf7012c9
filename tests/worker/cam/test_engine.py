"""The CAM engine: correctness against hand-computed CAM and the grad-cam package, invariances, cleanup."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from camwatch.methods import CAM_METHODS
from tests.support.models import TinyMlpHead, TinyNet, random_images, tiny_loaded
from worker.cam.base import METHODS, CamMethod, CamMethodError, get_method, register
from worker.cam.engine import CamEngine


def count_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_cam_equals_hand_computed_cam_from_extract_features(lite0, photos):
    """The hooked tensor is the head's features: the map equals ReLU(Σ_k w_k f_k) computed by hand."""
    engine = CamEngine(lite0, "cam")
    x, _ = engine.prepare([photos["chelsea"], photos["coffee"]])
    results = engine.run(x)
    net = lite0.module.features.net
    with torch.inference_mode():
        feats = net.extract_features(x)
        logits = lite0.module(x)
    for i, r in enumerate(results):
        c = int(logits[i].argmax())
        assert r.target_class == c
        with torch.inference_mode():
            expected = torch.relu(torch.einsum("k,khw->hw", lite0.module.fc.weight[c], feats[i])).numpy()
        np.testing.assert_allclose(r.heatmap, expected, rtol=1e-4, atol=1e-4)
        assert r.target_logit == pytest.approx(float(logits[i, c]), rel=1e-5)
        assert r.raw_max == pytest.approx(float(expected.max()), rel=1e-5)
        assert r.raw_sum == pytest.approx(float(expected.sum()), rel=1e-4)


def test_chelsea_is_a_cat_and_focus_lies_on_the_cat(lite0, photos):
    from camwatch.statistics.heatmap import compute_statistics

    img = photos["chelsea"]
    result = CamEngine(lite0, "gradcam").explain([img])[0]
    name = lite0.class_name(result.predicted_class)
    assert name in {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}, name
    stats = compute_statistics(result.heatmap, img.width, img.height, extent=result.extent)
    # chelsea (451x300): the cat's head and body occupy roughly x in [0.2, 0.8], y in [0.05, 0.95]
    cx, cy = stats.values["centroid_x"], stats.values["centroid_y"]
    assert 0.25 < cx < 0.75 and 0.1 < cy < 0.8, (cx, cy)


def test_cam_equals_gradcam_up_to_scale(lite0, photos):
    imgs = list(photos.values())
    cam = CamEngine(lite0, "cam").explain(imgs)
    grad = CamEngine(lite0, "gradcam").explain(imgs)
    for a, b in zip(cam, grad, strict=True):
        assert a.target_class == b.target_class
        assert pearson(a.heatmap, b.heatmap) > 0.999
        h, w = a.heatmap.shape
        np.testing.assert_allclose(a.heatmap / (h * w), b.heatmap, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("ours,peer", [("gradcam", "GradCAM"), ("gradcam++", "GradCAMPlusPlus"),
                                       ("eigencam", "EigenCAM")])
def test_agrees_with_grad_cam_package(lite0, photos, ours, peer):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    engine = CamEngine(lite0, ours)
    x, _ = engine.prepare(list(photos.values()))
    results = engine.run(x)
    cam = getattr(pytorch_grad_cam, peer)(model=lite0.module, target_layers=[lite0.module.features])
    theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(r.target_class) for r in results])
    for r, t in zip(results, theirs, strict=True):
        h = r.heatmap - r.heatmap.min()
        h = cv2.resize(h / (1e-7 + h.max()), (t.shape[1], t.shape[0]))  # their scaling and resize
        assert pearson(h, t) > 0.99


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"cam"}))
def test_batch_order_invariance(method):
    loaded = tiny_loaded(TinyNet())
    engine = CamEngine(loaded, method, scorecam_batch_size=5)
    images = random_images(4)
    forward = engine.explain(images)
    backward = engine.explain(images[::-1])[::-1]
    for a, b in zip(forward, backward, strict=True):
        assert a.target_class == b.target_class
        np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-6)
        assert a.topk_indices == b.topk_indices


def test_given_targets_change_the_explained_class(tiny_model):
    engine = CamEngine(tiny_model, "gradcam")
    images = random_images(3)
    default = engine.explain(images)
    forced = engine.explain(images, targets=[None, 3, 0])
    assert forced[0].target_class == default[0].target_class == default[0].predicted_class
    assert [forced[1].target_class, forced[2].target_class] == [3, 0]
    with pytest.raises(ValueError, match="outside"):
        engine.explain(images[:1], targets=[99])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_hooks_removed_and_state_restored_after_success_and_exception(method):
    loaded = tiny_loaded(TinyNet())
    model = loaded.module
    engine = CamEngine(loaded, method)
    model.train()
    model.body[1].eval()  # mixed modes stay mixed
    model.fc.weight.requires_grad_(True)
    model.body[0].weight.requires_grad_(False)  # a user's frozen layer stays frozen
    before = count_hooks(model)
    modes = [m.training for m in model.modules()]
    seen: list[bool] = []
    probe = model.fc.register_forward_pre_hook(lambda m, _i: seen.append(any(x.training for x in model.modules())))
    engine.explain(random_images(2))
    probe.remove()
    assert seen and not any(seen)  # the pass itself ran in eval mode
    assert count_hooks(model) == before
    assert [m.training for m in model.modules()] == modes
    assert model.training and model.fc.weight.requires_grad and not model.body[0].weight.requires_grad

    def boom(*_args):
        raise RuntimeError("boom")

    extra = model.fc.register_forward_hook(boom)  # fails mid-forward, after the engine's hook is in place
    with pytest.raises(RuntimeError, match="boom"):
        engine.explain(random_images(2))
    extra.remove()
    assert count_hooks(model) == before
    assert [m.training for m in model.modules()] == modes
    assert model.training and model.fc.weight.requires_grad and not model.body[0].weight.requires_grad


def test_gradient_methods_compute_no_parameter_gradients(tiny_model):
    engine = CamEngine(tiny_model, "gradcam")
    engine.explain(random_images(2))
    assert all(p.grad is None for p in tiny_model.module.parameters())


def test_cam_refuses_a_head_that_is_not_gap_linear():
    loaded = tiny_loaded(TinyMlpHead(), classifier="fc")
    with pytest.raises(CamMethodError, match="gradcam"):
        CamEngine(loaded, "cam")
    assert CamEngine(loaded, "gradcam").explain(random_images(1))[0].heatmap.shape == (8, 8)


def test_topk_predictions_from_the_same_pass(tiny_model):
    engine = CamEngine(tiny_model, "gradcam", topk=3)
    x, _ = engine.prepare(random_images(2))
    with torch.inference_mode():
        probs = torch.softmax(tiny_model.module(x), dim=1)
    for i, r in enumerate(engine.run(x)):
        assert r.topk_indices == probs[i].argsort(descending=True)[:3].tolist()
        np.testing.assert_allclose(r.topk_probs, probs[i].sort(descending=True).values[:3].numpy(), rtol=1e-5)
        assert (r.heatmap >= 0).all()


def test_unknown_method_lists_choices(tiny_model):
    with pytest.raises(CamMethodError, match="gradcam"):
        CamEngine(tiny_model, "nope")


def test_every_catalogued_method_is_implemented_and_nothing_else_registers():
    """The dashboard and the CLI list camwatch.methods.CAM_METHODS without torch: each entry must run."""
    assert set(METHODS) == set(CAM_METHODS)
    assert all(get_method(key).label == CAM_METHODS[key].label for key in METHODS)

    class Unlisted(CamMethod):
        key = "not-in-the-catalogue"

    with pytest.raises(ValueError, match="not in camwatch.methods.CAM_METHODS"):
        register(Unlisted)


def test_scorecam_weights_are_masked_class_probabilities(tiny_model):
    """Score-CAM on the tiny net: each channel weight is p_c(x ⊙ normalised upsampled A_k)."""
    engine = CamEngine(tiny_model, "scorecam", scorecam_batch_size=7)
    img = random_images(1)[0]
    x, _ = engine.prepare([img])
    result = engine.run(x)[0]
    model = tiny_model.module
    with torch.inference_mode():
        acts = model.body(x)[0]
        up = torch.nn.functional.interpolate(acts[None], size=x.shape[-2:], mode="bilinear")[0]
        weights = []
        for a in up:
            m = (a - a.min()) / (a.max() - a.min()).clamp_min(1e-7)
            weights.append(torch.softmax(model(x * m), dim=1)[0, result.target_class])
        expected = torch.relu(torch.einsum("k,khw->hw", torch.stack(weights), acts)).numpy()
    np.testing.assert_allclose(result.heatmap, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcam++", "eigencam"])
def test_cuda_matches_cpu(lite0, photos, method):
    images = list(photos.values())
    cpu = CamEngine(lite0, method, device="cpu").explain(images)
    gpu = CamEngine(lite0, method, device="cuda").explain(images)
    lite0.module.to("cpu")
    for a, b in zip(cpu, gpu, strict=True):
        assert a.target_class == b.target_class
        assert pearson(a.heatmap, b.heatmap) > 0.999
