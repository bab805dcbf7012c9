"""The model zoos offline: timm:<name> with local weights, hf:<directory> saved with save_pretrained, their
preprocessing from the models' own configs, and clear errors naming the file and the reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.support.zoo_models import save_tiny_hf_vit
from worker.cam.engine import CamEngine
from worker.cam.models import ModelLoadError, load_model
from worker.cam.preprocess import Preprocessing
from worker.cam.zoo import hf_preprocessing


@pytest.fixture(scope="module")
def deit4(tmp_path_factory):
    """A seeded timm DeiT-Tiny with 4 classes, saved as .pth and .safetensors."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=4).eval()
    folder = tmp_path_factory.mktemp("deit")
    torch.save(model.state_dict(), folder / "deit.pth")
    save_file(model.state_dict(), str(folder / "deit.safetensors"))
    return model, folder


def test_timm_spec_loads_local_weights_with_the_models_own_preprocessing(deit4):
    model, folder = deit4
    a = load_model("timm:deit_tiny_patch16_224", weights=folder / "deit.safetensors")
    b = load_model("timm:deit_tiny_patch16_224", weights=folder / "deit.pth", num_classes=4)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(a.module(x), model(x))
        torch.testing.assert_close(b.module(x), model(x))
    assert a.num_classes == 4 and a.class_names == ["class_0", "class_1", "class_2", "class_3"]
    assert a.spec == "timm:deit_tiny_patch16_224" and a.classifier == "head" and a.head == "softmax"
    assert a.preprocessing == Preprocessing(size=(224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                            crop_fraction=0.9, interpolation="bicubic")
    assert len(a.weights_sha256 or "") == 64 and a.weights_sha256 != b.weights_sha256
    engine = CamEngine(a, "gradcam")
    assert engine.target_layer == "blocks.11.norm1" and engine.grid == (14, 14)


def test_timm_errors_name_the_file_and_the_reason(deit4, tmp_path):
    _, folder = deit4
    with pytest.raises(ModelLoadError, match=r"unknown timm model 'deit_tiny_patch16_22'.*deit_tiny_patch16_224"):
        load_model("timm:deit_tiny_patch16_22")
    with pytest.raises(ModelLoadError, match=r"deit\.pth: the classifier 'head' has 4 outputs but 7 classes"):
        load_model("timm:deit_tiny_patch16_224", weights=folder / "deit.pth", num_classes=7)
    with pytest.raises(ModelLoadError, match=r"deit\.pth: tensor shapes do not match the architecture: pos_embed"):
        load_model("timm:deit_tiny_distilled_patch16_224", weights=folder / "deit.pth", num_classes=4)
    with pytest.raises(ModelLoadError, match="weights file not found"):
        load_model("timm:deit_tiny_patch16_224", weights=tmp_path / "missing.safetensors")


def test_a_single_logit_timm_model_is_binary(tmp_path):
    import timm

    model = timm.create_model("resnet10t", pretrained=False, num_classes=1)
    save_file(model.state_dict(), str(tmp_path / "r.safetensors"))
    loaded = load_model("timm:resnet10t", weights=tmp_path / "r.safetensors")
    assert loaded.head == "binary" and loaded.num_outputs == 1 and loaded.class_names == ["negative", "positive"]


def test_hf_directory_reads_labels_preprocessing_and_multi_label_configs(tmp_path):
    single = tmp_path / "single"
    save_tiny_hf_vit(single, ["cat", "dog"])
    loaded = load_model(f"hf:{single}")
    assert loaded.class_names == ["cat", "dog"] and loaded.head == "softmax"
    assert loaded.preprocessing == Preprocessing(size=(32, 32), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3),
                                                 interpolation="bicubic")
    assert "vit.layers.1.layernorm_before" in dict(loaded.module.named_modules())  # the model's own names
    with torch.inference_mode():
        assert isinstance(loaded.module(torch.zeros(1, 3, 32, 32)), torch.Tensor)  # logits, not a ModelOutput
    multi = tmp_path / "multi"
    save_tiny_hf_vit(multi, ["helmet", "vest", "gloves"], multi_label=True)
    assert load_model(f"hf:{multi}").head == "sigmoid"
    assert load_model(f"hf:{multi}", head="softmax").head == "softmax"  # the flag wins


def test_hf_directory_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model(f"hf:{tmp_path / 'nope'}")
    folder = tmp_path / "vit"
    model = save_tiny_hf_vit(folder, ["a", "b"])
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ModelLoadError, match="no preprocessor_config.json"):
        load_model(f"hf:{folder}")
    pickled = tmp_path / "pickled"  # a pytorch_model.bin (pickle) instead of model.safetensors
    pickled.mkdir()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    for name in ("config.json",):
        (pickled / name).write_text((folder / name).read_text())
    with pytest.raises(ModelLoadError, match="no model.safetensors.*pickled"):
        load_model(f"hf:{pickled}")
    with pytest.raises(ModelLoadError, match="--weights does not apply to hf specs"):
        load_model(f"hf:{folder}", weights=tmp_path / "w.safetensors")


@pytest.mark.parametrize("doc,expected", [
    ({"do_resize": True, "size": {"height": 224, "width": 160}, "resample": 2, "image_mean": [0.5] * 3,
      "image_std": [0.5] * 3}, Preprocessing(size=(224, 160), mean=(0.5,) * 3, std=(0.5,) * 3)),
    ({"size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
      "resample": 3, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
     Preprocessing(size=(224, 224), crop_fraction=0.875, interpolation="bicubic")),
    ({"size": {"shortest_edge": 224}, "crop_pct": 0.9, "resample": 1, "do_rescale": False,
      "image_mean": [127.5] * 3, "image_std": [127.5] * 3},  # pixels on [0, 255]: (x - 127.5)/127.5
     Preprocessing(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3, crop_fraction=0.9, interpolation="lanczos")),
])
def test_hf_image_processor_configs_map_to_camwatch_preprocessing(doc, expected):
    got = hf_preprocessing(doc, "preprocessor_config.json")
    assert got.size == expected.size and got.interpolation == expected.interpolation
    np.testing.assert_allclose(got.mean, expected.mean)
    np.testing.assert_allclose(got.std, expected.std)
    assert got.crop_fraction == pytest.approx(expected.crop_fraction)


def test_hf_processor_errors_name_the_file():
    with pytest.raises(ModelLoadError, match="p.json: size 'big' is not a size"):
        hf_preprocessing({"size": "big"}, "p.json")
    with pytest.raises(ModelLoadError, match="p.json: the image processor configuration gives no input size"):
        hf_preprocessing({}, "p.json")


def test_bicubic_preprocessing_matches_pillow_and_keeps_old_fingerprints(photos):
    bicubic = Preprocessing(size=(120, 100), interpolation="bicubic")
    ours, _ = bicubic.prepare(photos["coffee"])
    pil = np.asarray(photos["coffee"].resize((100, 120), Image.Resampling.BICUBIC))
    assert np.abs(ours.astype(int) - pil.astype(int)).max() <= 1
    assert "interpolation" not in Preprocessing().to_json()  # model versions registered before keep theirs
    assert bicubic.to_json()["interpolation"] == "bicubic"
    lanczos, _ = Preprocessing(size=(120, 100), interpolation="lanczos").prepare(photos["coffee"])
    assert np.array_equal(lanczos, np.asarray(photos["coffee"].resize((100, 120), Image.Resampling.LANCZOS)))
    with pytest.raises(ValueError, match="unknown interpolation"):
        Preprocessing(interpolation="cubic")  # type: ignore[arg-type]


def test_hf_json_must_be_an_object(tmp_path):
    folder = tmp_path / "vit"
    save_tiny_hf_vit(folder, ["a", "b"])
    (folder / "preprocessor_config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ModelLoadError, match="preprocessor_config.json: expected a JSON object"):
        load_model(f"hf:{folder}")
