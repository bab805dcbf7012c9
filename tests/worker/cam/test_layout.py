"""Layouts of layer outputs: tokens and channels-last maps detected (never guessed), converted exactly, and
refused with a reason when the evidence does not decide."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from worker.cam.layers import TargetLayerError, find_target_layer
from worker.cam.layout import (
    Layout,
    LayoutError,
    Traced,
    declared_prefix_tokens,
    detect_layout,
    grid_fits,
    token_grids,
)


def traced(name: str, shape: tuple[int, ...], module: nn.Module, order: int = 100) -> Traced:
    return Traced(name, shape, order, module)


@pytest.mark.parametrize("grid,size,fits", [
    ((7, 7), (224, 224), True),  # stride 32
    ((14, 14), (224, 224), True),  # patch 16
    ((7, 768), (224, 224), False),  # a channels-last (N, 7, 7, 768) read as NCHW
    ((768, 7), (224, 224), False),
    ((7, 5), (224, 160), True),  # non-square input, stride 32
    ((8, 5), (225, 160), True),  # ceil(225/32) = 8
    ((7, 7), (224, 160), False),  # wrong aspect ratio
    ((37, 37), (518, 518), True),  # patch 14
])
def test_grids_must_come_from_the_input_by_one_integer_stride(grid, size, fits):
    assert grid_fits(*grid, size) is fits


def test_token_grids_factor_the_patch_count_consistently_with_the_input():
    assert token_grids(196, (224, 224)) == [(14, 14)]
    assert token_grids(197, (224, 224)) == []  # a prime: the class token must be dropped first
    assert token_grids(140, (224, 160)) == [(14, 10)]
    assert token_grids(49, (224, 224)) == [(7, 7)]


def test_to_nchw_moves_every_value_to_its_grid_cell():
    n, h, w, d, prefix = 2, 3, 4, 5, 2
    patches = torch.arange(n * h * w * d, dtype=torch.float32).reshape(n, h, w, d)  # value at (i, r, c, k)
    tokens = torch.cat([torch.full((n, prefix, d), -1.0), patches.reshape(n, h * w, d)], dim=1)
    out = Layout("tokens", (h, w), d, prefix).to_nchw(tokens)
    assert out.shape == (n, d, h, w)
    for i, r, c, k in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 3)]:
        assert out[i, k, r, c] == patches[i, r, c, k]  # row-major patch order, prefix dropped
    nhwc = Layout("nhwc", (h, w), d).to_nchw(patches)
    assert torch.equal(nhwc, patches.permute(0, 3, 1, 2))
    with pytest.raises(LayoutError, match="expected a layer output of shape"):
        Layout("tokens", (h, w), d, prefix).to_nchw(tokens[:, 1:])


def test_channels_last_is_read_from_the_layernorm_and_the_grid():
    norm = nn.LayerNorm(768)
    layout = detect_layout(traced("norm2", (1, 7, 7, 768), norm), [], (224, 224))
    assert layout == Layout("nhwc", (7, 7), 768)


def test_convolution_output_is_channels_first_even_where_both_readings_fit():
    """(1, 16, 16, 16) at 224 px (stride 14) fits both readings; a convolution puts channels at dim 1."""
    conv = nn.Conv2d(3, 16, 14, stride=14)
    assert detect_layout(traced("conv", (1, 16, 16, 16), conv), [], (224, 224)) == Layout("nchw", (16, 16), 16)


def test_timm_layernorm2d_normalises_channels_first():
    from timm.layers import LayerNorm2d

    layout = detect_layout(traced("norm", (1, 320, 7, 7), LayerNorm2d(320)), [], (224, 224))
    assert layout == Layout("nchw", (7, 7), 320)


def test_a_module_without_channel_evidence_takes_it_from_the_nearest_earlier_same_shape_output():
    gelu = traced("mlp.act", (1, 7, 7, 3072), nn.GELU(), order=10)
    earlier = [traced("mlp.fc1", (1, 7, 7, 3072), nn.Linear(768, 3072), order=9),
               traced("other", (1, 3072, 7, 7), nn.Conv2d(3, 3072, 1), order=3)]
    assert detect_layout(gelu, earlier, (224, 224)).kind == "nhwc"


def test_ambiguous_shape_is_resolved_by_the_probe_or_refused():
    act = traced("act", (1, 16, 16, 16), nn.ReLU())  # no channel evidence, both readings fit at stride 14
    with pytest.raises(LayoutError, match="channels-first .* or channels-last .* could not be probed"):
        detect_layout(act, [], (224, 224))
    probed = detect_layout(act, [], (224, 224), probe=lambda: {"act": (1, 32, 32, 16)})
    assert probed == Layout("nhwc", (16, 16), 16)  # the last axis did not grow: channels
    probed = detect_layout(act, [], (224, 224), probe=lambda: {"act": (1, 16, 32, 32)})
    assert probed == Layout("nchw", (16, 16), 16)


def test_tokens_with_declared_prefix_and_inferred_prefix():
    norm = nn.LayerNorm(192)
    assert detect_layout(traced("b.norm1", (1, 198, 192), norm), [], (224, 224), declared_prefix=2) \
        == Layout("tokens", (14, 14), 192, 2)
    # nothing declared: the patch-embedding convolution's grid (14x14, 192 channels) gives 5 prefix tokens
    conv = traced("patch_embed.proj", (1, 192, 14, 14), nn.Conv2d(3, 192, 16, stride=16), order=1)
    assert detect_layout(traced("b.norm1", (1, 201, 192), norm), [conv], (224, 224)) \
        == Layout("tokens", (14, 14), 192, 5)
    with pytest.raises(LayoutError, match="no count of prefix tokens"):
        detect_layout(traced("b.norm1", (1, 201, 192), norm), [], (224, 224))
    with pytest.raises(LayoutError, match="not the batch"):
        detect_layout(traced("attn.q", (12, 197, 64), norm), [], (224, 224))


def test_declared_prefix_tokens_of_the_zoos():
    import timm

    assert declared_prefix_tokens(torchvision.models.vit_b_16(weights=None)) == 1
    assert declared_prefix_tokens(timm.create_model("deit_tiny_distilled_patch16_224")) == 2
    assert declared_prefix_tokens(timm.create_model("vit_little_patch16_reg4_gap_256")) == 4
    assert declared_prefix_tokens(torchvision.models.resnet18(weights=None)) is None


@pytest.mark.parametrize("arch,expected,layout", [
    ("swin_t", "features.7.1.norm2", Layout("nhwc", (7, 7), 768)),
    ("vit_b_16", "encoder.layers.encoder_layer_11.ln_1", Layout("tokens", (14, 14), 768, 1)),
])
def test_default_layers_of_torchvision_transformers(arch, expected, layout):
    model = torchvision.models.get_model(arch, weights=None).eval()
    call = find_target_layer(model, torch.zeros(1, 3, 224, 224))
    assert (call.name, call.layout) == (expected, layout)


def test_default_layers_of_timm_transformers():
    import timm

    for name, size, expected, layout in [
        ("deit_tiny_distilled_patch16_224", 224, "blocks.11.norm1", Layout("tokens", (14, 14), 192, 2)),
        ("swin_tiny_patch4_window7_224", 224, "layers.3.blocks.1.norm2", Layout("tokens", (7, 7), 768, 0)),
    ]:
        call = find_target_layer(timm.create_model(name).eval(), torch.zeros(1, 3, size, size))
        assert (call.name, call.layout) == (expected, layout)


def test_a_wrong_override_lists_the_candidates_with_their_layouts():
    model = torchvision.models.swin_t(weights=None).eval()
    example = torch.zeros(1, 3, 224, 224)
    with pytest.raises(TargetLayerError, match=r"'avgpool' outputs shape \(1, 768, 1, 1\), not a spatial map.*"
                                               r"Usable layers: .*norm \(channels-last 768×7×7\), permute \(768×7×7\); "
                                               r"default: features\.7\.1\.norm2"):
        find_target_layer(model, example, "avgpool")
    with pytest.raises(TargetLayerError, match=r"Close names: features\.7\.1\.norm2"):
        find_target_layer(model, example, "features.7.1.nrom2")
    assert find_target_layer(model, example, "permute").layout == Layout("nchw", (7, 7), 768)
