"""Model specs: loading the user's models, and clear errors that name the file and the reason."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from worker.cam.models import ModelLoadError, load_model, read_class_names


@pytest.fixture()
def resnet10_state(tmp_path):
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    torch.manual_seed(0)
    path = tmp_path / "r18.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_default_spec_is_imagenet_efficientnet_lite0(lite0):
    assert lite0.num_classes == 1000 and lite0.class_names[281] == "tabby"
    assert lite0.preprocessing.mean == (0.5, 0.5, 0.5) and lite0.preprocessing.size == (224, 224)
    assert len(lite0.weights_sha256 or "") == 64


def test_torchvision_state_dict_pt_and_safetensors_load_identically(resnet10_state, tmp_path):
    model, pt = resnet10_state
    st = tmp_path / "r18.safetensors"
    save_file(model.state_dict(), str(st))
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(f"part{i}" for i in range(10)))
    a = load_model("torchvision:resnet18", weights=pt, classes=classes)
    b = load_model("torchvision:resnet18", weights=st, num_classes=10)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(a.module(x), model.eval()(x))
        torch.testing.assert_close(b.module(x), model(x))
    assert a.class_names[3] == "part3" and b.class_names[3] == "class_3"
    assert a.classifier == "fc" and a.weights_sha256 != b.weights_sha256


def test_class_count_inferred_from_the_state_dict_when_not_given(resnet10_state):
    _, pt = resnet10_state
    assert load_model("torchvision:resnet18", weights=pt).num_classes == 10


def test_class_count_mismatch_is_a_clear_error(resnet10_state, tmp_path):
    _, pt = resnet10_state
    with pytest.raises(ModelLoadError, match=r"r18\.pt.*10 outputs but 7 classes"):
        load_model("torchvision:resnet18", weights=pt, num_classes=7)
    classes = tmp_path / "c.json"
    classes.write_text(json.dumps(["a", "b"]))
    with pytest.raises(ModelLoadError, match="10 outputs but 2 classes"):
        load_model("torchvision:resnet18", weights=pt, classes=classes)


def test_missing_and_unexpected_keys_are_listed(resnet10_state, tmp_path):
    model, _ = resnet10_state
    state = model.state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelLoadError, match=r"bad\.pth.*missing keys \(e\.g\. layer1\.0\.conv1\.weight\).*"
                                             r"unexpected keys \(e\.g\. extra\.weight\)"):
        load_model("torchvision:resnet18", weights=bad)


def test_missing_file_and_unknown_arch(tmp_path):
    with pytest.raises(ModelLoadError, match=r"nope\.pt: weights file not found"):
        load_model("torchvision:resnet18", weights=tmp_path / "nope.pt")
    with pytest.raises(ModelLoadError, match="did you mean resnet18"):
        load_model("torchvision:resnet81")
    with pytest.raises(ModelLoadError, match="unknown model spec"):
        load_model("keras:foo")


def test_full_pickled_module_refused_unless_trusted(tmp_path):
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    path = tmp_path / "full.pt"
    torch.save(model, path)
    with pytest.raises(ModelLoadError, match=r"full\.pt.*arbitrary code.*--trust-pickle"):
        load_model("torchvision:resnet18", weights=path)
    loaded = load_model("torchvision:resnet18", weights=path, trust_pickle=True)
    assert loaded.num_classes == 3


def test_python_factory_with_preprocessing(tmp_path):
    src = tmp_path / "mymodel.py"
    src.write_text(
        "import torchvision\n"
        "def build():\n"
        "    m = torchvision.models.resnet18(weights=None, num_classes=4)\n"
        "    return m, {'size': [160, 192], 'mode': 'letterbox'}\n"
        "def broken():\n"
        "    return 42\n")
    loaded = load_model(f"python:{src}:build")
    assert loaded.preprocessing.size == (160, 192) and loaded.preprocessing.mode == "letterbox"
    assert loaded.num_classes == 4
    with pytest.raises(ModelLoadError, match="returned int, not an nn.Module"):
        load_model(f"python:{src}:broken")
    with pytest.raises(ModelLoadError, match="no callable 'absent'"):
        load_model(f"python:{src}:absent")


def test_class_names_file_formats(tmp_path):
    lines = tmp_path / "c.txt"
    lines.write_text("cat\n\ndog\n")
    assert read_class_names(lines) == ["cat", "dog"]
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"c\.json: not valid JSON"):
        read_class_names(bad)
