"""Quantization-aware fine-tuning (fastsr/qat.py) against the CPU backend's int8 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastsr.engine import Engine
from fastsr.graph.from_torch import capture
from fastsr.graph.passes import optimize
from fastsr.models import build_model
from fastsr.qat import QATNet, fake_quantize_activation, fake_quantize_weight
from fastsr.quantize import INT8_WEIGHT_MAX, calibrate, quantize_weight
from tests.test_quantize import smooth_images


def small_srnet(seed=0, channels=16):
    torch.manual_seed(seed)
    model = build_model("srnet", scale=2, channels=channels, blocks=2, color="rgb")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
        tail = model.tail[0]
        tail.weight.normal_(0, 0.05)  # zero-initialised: the body would not reach the output
    return model.eval()


def test_fake_quantized_activation_rounds_and_clamps_as_the_kernel():
    x = torch.tensor([-10.0, 0.0, 0.3, 0.625, 0.875, 100.0])
    # s = 0.25, z = 10: 0.625 -> 12.5 -> 12 and 0.875 -> 13.5 -> 14 (ties to even),
    # -10 -> -30 -> 0 and 100 -> 410 -> 255 (clamped)
    expected = torch.tensor([-2.5, 0.0, 0.25, 0.5, 1.0, 61.25])
    torch.testing.assert_close(fake_quantize_activation(x, 0.25, 10), expected, atol=0, rtol=0)


def test_fake_quantized_weight_equals_quantize_weight():
    weight = torch.randn(6, 5, 3, 3)
    weight[2] = 0
    q, scale = quantize_weight(weight.numpy())
    expected = torch.from_numpy(q.astype(np.float32) * scale[:, None, None, None])
    torch.testing.assert_close(fake_quantize_weight(weight), expected, atol=0, rtol=1e-6)


def test_rounding_passes_gradients_straight_through_and_the_clamp_does_not():
    x = torch.tensor([-1.0, 0.013, 0.5, 3.0], requires_grad=True)
    fake_quantize_activation(x, 0.01, 10).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    fake_quantize_weight(w).sum().backward()
    torch.testing.assert_close(w.grad, torch.ones_like(w))


def test_every_parameter_gets_a_gradient_through_the_fake_quantized_net():
    model = small_srnet()
    net = QATNet(model)
    net.calibrate(smooth_images(2, 24, 24, 3))
    x = torch.from_numpy(smooth_images(1, 20, 20, 3, seed=3)[0]).permute(0, 3, 1, 2)
    net(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_fake_quantized_net_equals_the_int8_backend_within_one_level():
    model = small_srnet()
    inputs = smooth_images(2, 32, 32, 3) + smooth_images(1, 20, 28, 3)  # crops of small images
    graph = calibrate(optimize(capture(model, 3, {"scale": 2})), inputs, "percentile")
    net = QATNet(model)
    net.calibrate(inputs, "percentile")
    ranges = graph.meta["int8"]["activations"]
    inputs_read = [graph.producers()[name].inputs[0] for name in graph.meta["int8"]["layers"]]
    assert len(inputs_read) == len(net.ranges())  # the same convs run in int8
    for tensor, (scale, zero) in zip(inputs_read, net.ranges(), strict=True):
        assert scale == pytest.approx(ranges[tensor][0], rel=1e-3) and zero == ranges[tensor][1]
    net.set_ranges([ranges[tensor] for tensor in inputs_read])

    x = smooth_images(1, 40, 56, 3, seed=5)[0]
    int8 = Engine(graph, "cpu", "int8", threads=1).run(x) * 255
    with torch.no_grad():
        fake = net(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy() * 255
        fp32 = model(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy() * 255
    assert np.abs(fake - int8).max() <= 1.0
    assert np.abs(fake - int8).mean() < np.abs(fp32 - int8).mean() / 10  # it is the int8 error


def test_folding_and_freezing_leave_the_fp32_net_unchanged():
    model = small_srnet()
    net = QATNet(model)
    for layer in net.layers:
        layer.int8 = False
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), atol=1e-5, rtol=0)
    assert INT8_WEIGHT_MAX == 63 and set(net.parameters()) == set(model.parameters())


def test_uncalibrated_net_and_unfoldable_nets_are_refused():
    with pytest.raises(RuntimeError, match="calibrate"):
        QATNet(small_srnet())(torch.rand(1, 3, 8, 8))
    lone_norm = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 3, 3))
    with pytest.raises(ValueError, match="BatchNorm2d right after a Conv2d"):
        QATNet(lone_norm)
