"""Quantization-aware fine-tuning: train through the arithmetic of the CPU backend's int8 convs.

`prepare(model)` returns a view of `model` sharing its parameters, in which each conv and
the BatchNorm after it is one `FoldedConv` (BatchNorm folded as `fold_batchnorm` folds it,
its statistics frozen, so the weights trained are the weights the kernels get). The convs
that run in int8 (all but the first and the last, as `quantize.default_int8_layers` picks
them on these sequential nets) see
  - their input fake-quantised to u8 per tensor as csrc `to_u8` does it:
    q = round_half_even(clamp(x * (1/s) + z, 0, 255)), x' = s * (q - z);
  - their folded weight fake-quantised per output channel as `quantize_weight` does it.
Rounding passes gradients straight through; the u8 clamp does not. Input ranges are chosen
from the fp32 activations of fixed calibration inputs by a `quantize.ESTIMATORS` estimator,
as `quantize.calibrate` chooses them, so recalibrating the trained weights ships them.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fastsr.quantize import INT8_WEIGHT_MAX, scale_and_zero, value_range

ESTIMATOR = "percentile"  # what record_int8 picked for both quality models before QAT


class _RoundStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)  # half to even, as cvtps2dq and np.rint

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def fake_quantize_activation(x: torch.Tensor, scale: float, zero: int) -> torch.Tensor:
    inv = 1 / torch.tensor(scale, dtype=torch.float32)  # the kernel multiplies by float 1/s
    q = _RoundStraightThrough.apply(torch.clamp(x * inv + zero, 0, 255))
    return (q - zero) * torch.tensor(scale, dtype=torch.float32)


def fake_quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    peak = weight.detach().abs().flatten(1).amax(1)
    scale = torch.where(peak > 0, peak / INT8_WEIGHT_MAX, torch.ones_like(peak))
    scale = scale[:, None, None, None]
    q = _RoundStraightThrough.apply(weight / scale)
    return torch.clamp(q, -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX) * scale


class FoldedConv(nn.Module):
    """A conv and its following BatchNorm (frozen), optionally through int8 fake-quant."""

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d | None):
        super().__init__()
        self.conv, self.norm = conv, norm
        self.int8 = False
        self.input_quant: tuple[float, int] | None = None  # (scale, zero) once calibrated
        self.observed: list[np.ndarray] | None = None  # while calibrating: fp32 inputs

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.conv.weight
        bias = self.conv.bias if self.conv.bias is not None else weight.new_zeros(weight.shape[0])
        if self.norm is not None:
            factor = self.norm.weight / torch.sqrt(self.norm.running_var + self.norm.eps)
            weight = weight * factor[:, None, None, None]
            bias = (bias - self.norm.running_mean) * factor + self.norm.bias
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.folded()
        if self.int8 and self.observed is not None:
            self.observed.append(x.detach().permute(0, 2, 3, 1).numpy().ravel())  # NHWC order
        elif self.int8:
            if self.input_quant is None:
                raise RuntimeError("QATNet.calibrate must choose the int8 input ranges first")
            x = fake_quantize_activation(x, *self.input_quant)
            weight = fake_quantize_weight(weight)
        c = self.conv
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)


def _rebuild(module: nn.Module, layers: list[FoldedConv]) -> nn.Module:
    if isinstance(module, nn.Sequential):
        children, out = list(module), []
        for i, child in enumerate(children):
            if isinstance(child, nn.BatchNorm2d) and i and isinstance(children[i - 1], nn.Conv2d):
                continue  # folded into the conv before it
            if isinstance(child, nn.Conv2d):
                after = children[i + 1] if i + 1 < len(children) else None
                norm = after if isinstance(after, nn.BatchNorm2d) else None
                layers.append(FoldedConv(child, norm))
                out.append(layers[-1])
            else:
                out.append(_rebuild(child, layers))
        return nn.Sequential(*out)
    if isinstance(module, nn.Conv2d):
        layers.append(FoldedConv(module, None))
        return layers[-1]
    if isinstance(module, (nn.BatchNorm2d, nn.ConvTranspose2d)):
        raise ValueError(f"qat folds only a BatchNorm2d right after a Conv2d, got {module}")
    if not module._modules:
        return module
    view = copy.copy(module)
    view._modules = {name: _rebuild(child, layers) for name, child in module._modules.items()}
    return view


class QATNet(nn.Module):
    """`model` with its convs as FoldedConvs; `layers` in forward order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.layers: list[FoldedConv] = []
        self.net = _rebuild(model, self.layers)
        if len(self.layers) < 2:
            raise ValueError("qat needs a net with int8 convs after its first")
        for layer in self.layers[1:]:  # as quantize.default_int8_layers: all but the first
            layer.int8 = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def int8_layers(self) -> list[FoldedConv]:
        return [layer for layer in self.layers if layer.int8]

    @torch.no_grad()
    def calibrate(self, inputs: list[np.ndarray], estimator: str = ESTIMATOR) -> None:
        """Input ranges of the int8 convs from the fp32 activations of `inputs` (NHWC
        float32 arrays of any sizes, as `quantize.calibration_inputs` gives them)."""
        value_range(np.zeros(1, np.float32), estimator)  # reject an unknown estimator early
        layers = self.int8_layers()
        for layer in layers:
            layer.observed = []
        try:
            for x in inputs:
                self.net(torch.from_numpy(x).permute(0, 3, 1, 2))
            for layer in layers:
                values = np.concatenate(layer.observed)
                layer.input_quant = scale_and_zero(*value_range(values, estimator))
        finally:
            for layer in layers:
                layer.observed = None

    def ranges(self) -> list[tuple[float, int]]:
        return [layer.input_quant for layer in self.int8_layers()]

    def set_ranges(self, ranges: list) -> None:
        for layer, (scale, zero) in zip(self.int8_layers(), ranges, strict=True):
            layer.input_quant = (float(scale), int(zero))
