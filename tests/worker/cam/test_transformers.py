"""Vision transformers: Grad-CAM agrees with pytorch-grad-cam (given its reshape_transform) at the same layer
and target on real photos; Swin's channels-last maps are permuted, not misread; Hugging Face models saved
with save_pretrained explain end to end through the worker's commands."""

from __future__ import annotations

import json
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from camwatch.imaging.decode import load_image
from tests.support.photos import more_photos
from tests.support.zoo_models import channels_last_reshape, save_tiny_hf_vit, token_reshape
from worker.cam.engine import CamEngine
from worker.cam.loaded import LoadedModel
from worker.cam.models import load_model
from worker.cam.preprocess import Preprocessing
from worker.cam.zoo import timm_preprocessing
from worker.cli import main


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _torchvision(arch: str) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    head = model.heads.head if arch.startswith("vit") else model.head
    nn.init.normal_(head.weight, std=0.02)  # torchvision zero-initialises the ViT head: every map would be 0
    return model.eval()


def _timm(name: str, **kwargs: object) -> nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


# model, the layer pytorch-grad-cam is given (ours must choose the same by default), its reshape_transform
CASES: dict[str, tuple[Callable[[], nn.Module], str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "torchvision vit_b_16": (lambda: _torchvision("vit_b_16"), "encoder.layers.encoder_layer_11.ln_1",
                             token_reshape(1, (14, 14))),
    "torchvision swin_t": (lambda: _torchvision("swin_t"), "features.7.1.norm2", channels_last_reshape),
    "timm deit_tiny_patch16_224": (lambda: _timm("deit_tiny_patch16_224"), "blocks.11.norm1",
                                   token_reshape(1, (14, 14))),
    "timm deit_tiny_distilled (class + distillation tokens)": (
        lambda: _timm("deit_tiny_distilled_patch16_224"), "blocks.11.norm1", token_reshape(2, (14, 14))),
    "timm vit_little reg4 (4 register tokens, no class token)": (
        lambda: _timm("vit_little_patch16_reg4_gap_256"), "blocks.13.norm1", token_reshape(4, (16, 16))),
    "timm dinov2 small reg4 at 224 (class + 4 register tokens)": (
        lambda: _timm("vit_small_patch14_reg4_dinov2", img_size=224, num_classes=1000), "blocks.11.norm1",
        token_reshape(5, (16, 16))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradcam_agrees_with_pytorch_grad_cam_on_real_photos(case, photos):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    build, layer, reshape = CASES[case]
    model = build()
    size = int(model.patch_embed.img_size[0]) if hasattr(model, "patch_embed") else 224
    pre = timm_preprocessing(model) if hasattr(model, "pretrained_cfg") else Preprocessing()
    loaded = LoadedModel(module=model, class_names=[str(i) for i in range(1000)], preprocessing=pre, spec=case)
    engine = CamEngine(loaded, "gradcam")
    assert engine.target_layer == layer and pre.size == (size, size)
    images = [more_photos()["grace_hopper"], photos["chelsea"]]
    x, _ = engine.prepare(images)
    ours = engine.run(x)
    cam = GradCAM(model=model, target_layers=[model.get_submodule(layer)], reshape_transform=reshape)
    theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(r.target_class) for r in ours])
    for r, t in zip(ours, theirs, strict=True):
        assert r.heatmap.shape == engine.grid and float(r.heatmap.max()) > 0
        h = r.heatmap - r.heatmap.min()
        h = cv2.resize(h / (1e-7 + h.max()), (t.shape[1], t.shape[0]))  # their min-max scaling and resize
        assert pearson(h, t) > 0.99, case


def test_swin_norm2_is_explained_on_its_7x7_grid_not_as_a_7x768_map(tmp_path, photos):
    """The issue's reproduction: explain --model torchvision:swin_t --target-layer features.7.1.norm2."""
    model = _torchvision("swin_t")
    weights = tmp_path / "swin_t.pth"
    torch.save(model.state_dict(), weights)
    image = tmp_path / "chelsea.jpg"
    photos["chelsea"].save(image)
    out = tmp_path / "out"
    assert main(["explain", str(image), "--model", "torchvision:swin_t", "--weights", str(weights),
                 "--target-layer", "features.7.1.norm2", "--out", str(out)]) == 0
    doc = json.loads((out / "chelsea.jpg.cam.json").read_text())
    assert doc["heatmap_grid"] == [7, 7] and doc["target_layout"] == "channels-last 768×7×7"
    # the map by hand: Grad-CAM on the permuted activations of the hooked LayerNorm
    decoded = load_image(image, draft_size=224)  # as the command decodes it (JPEG draft)
    pre = Preprocessing()  # torchvision: ImageNet mean/std at 224, whole image resized
    x = pre.to_tensor([pre.prepare(decoded.image)[0]])
    store: dict[str, torch.Tensor] = {}
    layer = model.get_submodule("features.7.1.norm2")
    handle = layer.register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    logits = model(x)
    handle.remove()
    (grad,) = torch.autograd.grad(logits[0, doc["target_class"]], store["a"])
    a, g = store["a"][0].detach().permute(2, 0, 1), grad[0].permute(2, 0, 1)  # (768, 7, 7)
    expected = torch.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(0)).numpy()
    np.testing.assert_allclose(np.array(doc["heatmap"]), expected, rtol=1e-3, atol=2e-6)  # 6 decimals in JSON


def test_hugging_face_directory_explains_end_to_end(tmp_path, photos):
    from transformers import ViTImageProcessor

    directory = tmp_path / "hf-vit"
    labels = ["helmet", "no helmet", "person"]
    hf = save_tiny_hf_vit(directory, labels)
    image = tmp_path / "coffee.jpg"
    photos["coffee"].save(image, quality=95)
    out = tmp_path / "out"
    assert main(["explain", str(image), "--model", f"hf:{directory}", "--out", str(out)]) == 0
    doc = json.loads((out / "coffee.jpg.cam.json").read_text())
    assert doc["model"] == f"hf:{directory}" and doc["head"] == "softmax"
    assert doc["target_layer"] == "vit.layers.1.layernorm_before"
    assert doc["target_layout"] == "tokens: 1 prefix + 4×4 patches, 32 dims" and doc["heatmap_grid"] == [4, 4]
    assert doc["preprocessing"]["size"] == [32, 32] and doc["preprocessing"]["interpolation"] == "bicubic"
    # the processor's own pixels and the model's own logits, independently of camwatch
    decoded = load_image(image, draft_size=32).image  # as the command decodes it
    pixels = ViTImageProcessor.from_pretrained(directory)(decoded, return_tensors="pt")["pixel_values"]
    loaded = load_model(f"hf:{directory}")
    ours, _ = CamEngine(loaded, "gradcam").prepare([decoded])
    assert float((ours - pixels).abs().max()) <= 1.01 / 255 / 0.2  # one grey level, the smallest std
    with torch.enable_grad():
        store: dict[str, torch.Tensor] = {}
        layer = hf.get_submodule("vit.layers.1.layernorm_before")
        handle = layer.register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
        logits = hf(pixel_values=ours).logits
        handle.remove()
        top = int(logits[0].argmax())
        (grad,) = torch.autograd.grad(logits[0, top], store["a"])
    a, g = store["a"][0, 1:].detach().reshape(4, 4, 32), grad[0, 1:].reshape(4, 4, 32)
    expected = torch.relu((a * g.mean(dim=(0, 1))).sum(-1)).numpy()
    np.testing.assert_allclose(np.array(doc["heatmap"]), expected, rtol=1e-3, atol=1e-7)
    assert doc["target_class"] == top and doc["target_class_name"] == labels[top]
    probs = torch.softmax(logits[0].detach(), 0)
    assert doc["confidence"] == pytest.approx(float(probs.max()), rel=1e-4)


def test_hugging_face_model_monitored_by_the_worker_with_both_targets(tmp_path, photos):
    """``camwatch run --once --model hf:DIR --target both``: predictions, the top-1 map and the label's map."""
    from sqlalchemy import select

    from db import make_engine
    from db.models import Heatmap, ModelVersion, Prediction

    directory = tmp_path / "hf-vit"
    labels = ["helmet", "no helmet", "person"]
    save_tiny_hf_vit(directory, labels)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("chelsea", "coffee", "astronaut"):
        photos[name].save(src / f"{name}.jpg", quality=90)
        (src / f"{name}.jpg.json").write_text(json.dumps({"label": "person"}))
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    assert main(["run", "--source", str(src), "--db", url, "--model", f"hf:{directory}", "--once",
                 "--target", "both", "--stable-seconds", "0"]) == 0
    engine = make_engine(url)
    with engine.connect() as conn:
        (version,) = conn.execute(select(ModelVersion)).all()
        predictions = conn.execute(select(Prediction)).all()
        maps = conn.execute(select(Heatmap)).all()
    engine.dispose()
    assert version.spec == f"hf:{directory}" and version.class_names == labels and version.target_mode == "both"
    assert version.target_layer == "vit.layers.1.layernorm_before" and version.head == "softmax"
    assert len(predictions) == 3 and any(p.class_index != 2 for p in predictions)  # the label's map is stored
    for p in predictions:
        own = [(m.target_class, m.is_primary, m.grid_h, m.grid_w) for m in maps if m.image_id == p.image_id]
        expected = [(p.class_index, True, 4, 4)] + ([(2, False, 4, 4)] if p.class_index != 2 else [])
        assert sorted(own) == sorted(expected)
        assert p.correct == (p.class_index == 2)
