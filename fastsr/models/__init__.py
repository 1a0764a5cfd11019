"""The networks fastsr trains and ships, by architecture name."""

from __future__ import annotations

import torch
from torch import nn

from fastsr.models.backprojection import BackProjectionNet
from fastsr.models.classical import EDSR, ESPCN, FSRCNN
from fastsr.models.fastnet import FastNet
from fastsr.models.lapsrn import LapSRN
from fastsr.models.srnet import COLOR_CHANNELS, SRNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "srnet": SRNet,
    "fastnet": FastNet,
    "espcn": ESPCN,
    "fsrcnn": FSRCNN,
    "edsr": EDSR,
    "lapsrn": LapSRN,
    "dbpn": BackProjectionNet,
}


def build_model(architecture: str, **args) -> nn.Module:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](**args)


def _conv_macs(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> int:
    taps = module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, nn.ConvTranspose2d):
        # Every input value is scattered onto k*k*Cout outputs.
        return inputs[0].numel() * taps * module.out_channels // module.groups
    return output.numel() * taps * module.in_channels // module.groups


def macs_per_input_pixel(model: nn.Module, size: int = 32) -> float:
    """Convolution multiply-adds per LR input pixel, counted on one `size`x`size` input."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += _conv_macs(module, inputs, output)

    hooks = [conv.register_forward_hook(count) for conv in convs]
    try:
        with torch.no_grad():
            model(torch.zeros(1, convs[0].in_channels, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    return total / (size * size)


__all__ = ["ARCHITECTURES", "COLOR_CHANNELS", "build_model", "macs_per_input_pixel"]
