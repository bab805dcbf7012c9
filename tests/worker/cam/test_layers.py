"""Target-layer detection on torchvision families, overrides and their errors."""

from __future__ import annotations

import pytest
import torch
import torchvision

from tests.support.models import random_images
from worker.cam.base import CamMethodError
from worker.cam.engine import CamEngine
from worker.cam.layers import TargetLayerError, find_target_layer
from worker.cam.models import LoadedModel
from worker.cam.preprocess import Preprocessing


@pytest.mark.parametrize("arch,layer,cam_ok", [
    ("resnet18", "layer4", True),
    ("mobilenet_v3_small", "features", False),
    ("efficientnet_b0", "features", True),
    ("convnext_tiny", "features", False),
    ("densenet121", "features", False),
])
def test_auto_detection_on_torchvision_families(arch, layer, cam_ok):
    model = torchvision.models.get_model(arch, weights=None, num_classes=7).eval()
    fc = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    loaded = LoadedModel(module=model, class_names=[str(i) for i in range(7)],
                         preprocessing=Preprocessing(size=(96, 96)), spec=arch, classifier=fc)
    engine = CamEngine(loaded, "gradcam")
    assert engine.target_layer == layer
    result = engine.explain(random_images(1, (80, 60)))[0]
    assert result.heatmap.shape == (3, 3) and (result.heatmap >= 0).all()
    if cam_ok:
        assert CamEngine(loaded, "cam").target_layer == layer
    else:
        with pytest.raises(CamMethodError, match="gradcam"):
            CamEngine(loaded, "cam")


def test_lite0_picks_the_head_features_not_the_shared_activation(lite0):
    call = find_target_layer(lite0.module, torch.zeros(1, 3, 224, 224))
    assert call.name == "features" and call.shape == (1, 1280, 7, 7)


def test_override_errors_list_candidates(lite0):
    example = torch.zeros(1, 3, 224, 224)
    with pytest.raises(TargetLayerError, match=r"no module named 'featurs'.*Close names: features"):
        find_target_layer(lite0.module, example, "featurs")
    with pytest.raises(TargetLayerError, match=r"called \d+ times.*Usable layers: .*features"):
        find_target_layer(lite0.module, example, "features.net._swish")
    with pytest.raises(TargetLayerError, match="not a spatial"):
        find_target_layer(lite0.module, example, "pool")
    assert find_target_layer(lite0.module, example, "features.net._blocks.15").shape == (1, 320, 7, 7)
