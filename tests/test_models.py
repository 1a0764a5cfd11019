import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastsr.models import ARCHITECTURES, build_model, macs_per_input_pixel
from fastsr.models.blocks import ChannelAttention
from fastsr.train import CONFIGS

# (architecture, args, input channels) covering every network and every block type.
CASES = [
    ("srnet", {"channels": 16, "blocks": 2}, 3),
    ("srnet", {"channels": 16, "blocks": 2, "color": "y"}, 1),
    ("srnet", {"channels": 16, "blocks": 1, "block": "dense"}, 3),
    ("srnet", {"channels": 16, "blocks": 1, "block": "attention"}, 3),
    ("srnet", {"channels": 16, "blocks": 1, "dilation": 2}, 3),
    ("fastnet", {"widths": (8, 8)}, 1),
    ("espcn", {}, 1),
    ("fsrcnn", {}, 1),
    ("edsr", {"channels": 16, "blocks": 2}, 3),
    ("dbpn", {"channels": 8, "stages": 1}, 3),
]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(("architecture", "args", "channels"), CASES)
def test_forward_upscales_by_scale_and_traces(architecture, args, channels, scale):
    model = build_model(architecture, scale=scale, **args).eval()
    x = torch.rand(2, channels, 10, 13)
    with torch.no_grad():
        y = model(x)
        traced = torch.fx.symbolic_trace(model)
        assert torch.allclose(traced(x), y, atol=1e-6)
    assert y.shape == (2, channels, 10 * scale, 13 * scale)


# What the engine's torch.fx frontend maps to its IR.
ENGINE_MODULES = (
    nn.Conv2d,
    nn.ConvTranspose2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.PReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.PixelShuffle,
    nn.AdaptiveAvgPool2d,
)
ENGINE_FUNCTIONS = {operator.add, operator.mul, torch.cat, F.interpolate}


@pytest.mark.parametrize(("architecture", "args", "channels"), CASES + [("lapsrn", {}, 1)])
def test_traced_graph_uses_only_ops_the_engine_maps(architecture, args, channels):
    model = build_model(architecture, scale=4, **args)
    graph = torch.fx.symbolic_trace(model).graph
    for node in graph.nodes:
        if node.op == "call_module":
            assert isinstance(model.get_submodule(node.target), ENGINE_MODULES), node.target
        elif node.op == "call_function":
            assert node.target in ENGINE_FUNCTIONS, node.target
        else:
            assert node.op in {"placeholder", "output", "get_attr"}, node.format_node()


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_lapsrn_pyramid_upscales_and_traces(scale):
    model = build_model("lapsrn", scale=scale, channels=8, depth=1).eval()
    x = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        assert torch.allclose(torch.fx.symbolic_trace(model)(x), model(x))
        assert model(x).shape == (1, 1, 9 * scale, 11 * scale)


def test_lapsrn_rejects_non_power_of_two_scale():
    with pytest.raises(ValueError, match="power-of-two"):
        build_model("lapsrn", scale=3)


def test_unknown_architecture_is_reported():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vdsr", scale=2)


@pytest.mark.parametrize("architecture", ["srnet", "fastnet"])
def test_untrained_residual_nets_start_as_torch_bicubic(architecture):
    model = build_model(architecture, scale=3).eval()
    channels = model.body[0].in_channels if architecture == "fastnet" else 3
    x = torch.rand(1, channels, 8, 8)
    expected = F.interpolate(x, scale_factor=3, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(model(x), expected)


def test_channel_attention_scales_each_channel_by_a_sigmoid_of_its_mean():
    gate = ChannelAttention(4, reduction=1)
    x = torch.rand(1, 4, 5, 5)
    down, up = gate.gate[1], gate.gate[3]
    hidden = torch.relu(down.weight[:, :, 0, 0] @ x.mean(dim=(2, 3))[0] + down.bias)
    scale = torch.sigmoid(up.weight[:, :, 0, 0] @ hidden + up.bias)
    assert torch.allclose(gate(x), x * scale.view(1, 4, 1, 1), atol=1e-6)


def test_mac_count_matches_hand_count_for_espcn():
    # 5x5 1->64, 3x3 64->32, 3x3 32->r^2, all at LR resolution.
    scale = 3
    expected = 25 * 64 + 9 * 64 * 32 + 9 * 32 * scale**2
    assert macs_per_input_pixel(build_model("espcn", scale=scale)) == expected


def test_mac_count_of_transposed_conv_is_per_input_pixel():
    # FSRCNN's 9x9 deconv of stride r scatters 81*56 MACs from every LR pixel.
    expected = 25 * 56 + 56 * 12 + 4 * 9 * 12 * 12 + 12 * 56 + 81 * 56
    assert macs_per_input_pixel(build_model("fsrcnn", scale=4)) == expected


def test_edsr_baseline_has_the_published_parameter_count():
    # EDSR paper: baseline x2 1.37 M, x4 1.52 M (mean shifts are frozen, not counted).
    for scale, published in [(2, 1.37e6), (4, 1.52e6)]:
        model = build_model("edsr", scale=scale)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert abs(trainable - published) < 0.01e6


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_configs_respect_their_mac_budget(name):
    config = CONFIGS[name]
    budget = 20_000 if name.startswith("fast") else 1_000_000
    model = build_model(config["architecture"], **config["args"])
    assert macs_per_input_pixel(model) <= budget


def test_every_architecture_is_covered_by_a_test_case():
    covered = {architecture for architecture, _, _ in CASES} | {"lapsrn"}
    assert covered == set(ARCHITECTURES)
