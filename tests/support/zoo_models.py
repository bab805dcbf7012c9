"""Models for the transformer, zoo and head tests: tiny Hugging Face ViTs saved offline, pytorch-grad-cam
reshape transforms, and fixed-weight heads whose Grad-CAM maps are known analytically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from worker.cam.loaded import LoadedModel
from worker.cam.preprocess import Preprocessing


def token_reshape(prefix: int, grid: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """pytorch-grad-cam's ``reshape_transform`` for ViT tokens: drop ``prefix`` tokens, patches to a grid."""
    def reshape(t: torch.Tensor) -> torch.Tensor:
        patches = t[:, prefix:, :]
        return patches.reshape(t.shape[0], grid[0], grid[1], t.shape[2]).permute(0, 3, 1, 2)
    return reshape


def channels_last_reshape(t: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's ``reshape_transform`` for channels-last (Swin) maps."""
    return t.permute(0, 3, 1, 2)


def save_tiny_hf_vit(directory: Path, labels: list[str], *, seed: int = 0, size: int = 32, patch: int = 8,
                     multi_label: bool = False) -> nn.Module:
    """A randomly initialised ``ViTForImageClassification`` and its image processor, saved with
    ``save_pretrained`` (config, model.safetensors, preprocessor_config.json); returns the model."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(image_size=size, patch_size=patch, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=len(labels), id2label=dict(enumerate(labels)),
                       label2id={n: i for i, n in enumerate(labels)},
                       problem_type="multi_label_classification" if multi_label else None)
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(directory)
    ViTImageProcessor(size={"height": size, "width": size}, resample=3, image_mean=[0.4, 0.5, 0.6],
                      image_std=[0.2, 0.25, 0.3]).save_pretrained(directory)
    return model


class ChannelHead(nn.Module):
    """features = the input itself (an identity 1×1 convolution), global average pooling, a fixed linear head.

    With preprocessing mean 0 / std 1, ``A_k`` is channel k of the image on [0, 1] and
    ``logit_c = Σ_k W_ck · mean(A_k) + b_c``, so Grad-CAM of score ``s = ±logit_c`` is exactly
    ``ReLU(±Σ_k W_ck A_k) / (h·w)``.
    """

    def __init__(self, weight: list[list[float]], bias: list[float]) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 3, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, len(weight))
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor(weight))
            self.fc.bias.copy_(torch.tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def channel_head_loaded(weight: list[list[float]], bias: list[float], head: str, size: int = 16,
                        names: list[str] | None = None, threshold: float = 0.5) -> LoadedModel:
    n = len(weight)
    classes = names or (["negative", "positive"] if head == "binary" else [f"c{i}" for i in range(n)])
    return LoadedModel(module=ChannelHead(weight, bias).eval(), class_names=classes,
                       preprocessing=Preprocessing(size=(size, size), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
                       spec=f"channel-head-{head}", classifier="fc", head=head, head_threshold=threshold)


def binary_factory() -> dict:
    """``python:`` factory: a single-logit model (red minus green), 16×16 input."""
    return {"model": ChannelHead([[1.0, -1.0, 0.0]], [0.0]),
            "preprocessing": {"size": [16, 16], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}}


def multilabel_factory() -> dict:
    """``python:`` factory: three labels, one per colour channel, each present when its channel's mean > 0.3."""
    return {"model": ChannelHead([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [-0.3, -0.3, -0.3]),
            "preprocessing": {"size": [16, 16], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
            "class_names": ["red", "green", "blue"]}
