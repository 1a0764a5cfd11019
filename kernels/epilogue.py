"""Activations and the fused convolution epilogue, shared by conv2d and conv_transpose2d.

The epilogue turns a BLOCK_M x BLOCK_N float32 accumulator (output pixels x output
channels) into stored values, in the order the IR defines:

    y = act(acc + bias) ; y = pixel_shuffle(y, R) ; y = y + skip

or, with a GATE (then R = 1 and the skip has the output's shape),
y = (y + skip) * (gate_scale * gate(y) + gate_shift).

Pixel shuffle costs nothing here: channel c*R*R + i*R + j of pixel (y, x) is simply
stored at channel c of pixel (y*R + i, x*R + j) of the upscaled output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl
from fastsr.kernels.resize import sample

from fastsr.graph import ir

ACTIVATIONS = ("none", *ir.ACTIVATIONS)
SKIPS = ("none", "same", *ir.RESIZE_MODES)  # "same": skip has the output's shape
# A resized skip costs up to 16 loads per output value, all live at once in the epilogue.
# Measured with the AOT check: a 128 x 16 tile on 4 warps (16 values a thread) spills
# 400-744 bytes on sm_80/sm_90; 8 values a thread spill nothing.
RESIZED_SKIP_VALUES_PER_THREAD = 8
MAX_WARPS = 8


@triton.jit
def apply_activation(y, slope, alpha, low, high, ACTIVATION: tl.constexpr):
    """`slope` (prelu) broadcasts against y; `alpha` is leaky_relu's; low/high clamp's."""
    if ACTIVATION == "relu":
        y = tl.maximum(y, 0.0)
    elif ACTIVATION == "prelu":
        y = tl.where(y >= 0.0, y, y * slope)
    elif ACTIVATION == "leaky_relu":
        y = tl.where(y >= 0.0, y, y * alpha)
    elif ACTIVATION == "tanh":
        # tanh(y) = 2 sigmoid(2y) - 1: one exp, no libdevice call (which the interpreter
        # lacks); absolute error stays near float32 epsilon over the whole range.
        y = 2.0 * tl.sigmoid(2.0 * y) - 1.0
    elif ACTIVATION == "sigmoid":
        y = tl.sigmoid(y)
    elif ACTIVATION == "silu":
        y = y * tl.sigmoid(y)
    elif ACTIVATION == "clamp":
        y = tl.minimum(tl.maximum(y, low), high)
    return y


@triton.jit
def store_conv_output(acc, out_y, out_x, pixel_mask, channel, channel_mask,
                      bias_ptr, slope_ptr, alpha, skip_ptr, out_ptr,
                      out_w, skip_h, skip_w, gate_scale, gate_shift,
                      COUT: tl.constexpr, ACTIVATION: tl.constexpr, SHUFFLE: tl.constexpr,
                      SKIP: tl.constexpr, SKIP_FACTOR: tl.constexpr, GATE: tl.constexpr):
    """Apply the epilogue to acc and store it.

    out_y / out_x (BLOCK_M) are conv output pixel coordinates before the shuffle, out_w
    the conv output width; channel (BLOCK_N) the conv output channels. out_ptr and
    skip_ptr point at this program's image.
    """
    y = acc + tl.load(bias_ptr + channel, mask=channel_mask, other=0.0)[None, :]
    if ACTIVATION == "prelu":
        slope = tl.load(slope_ptr + channel, mask=channel_mask, other=0.0)[None, :]
    else:
        slope = 0.0
    y = apply_activation(y, slope, alpha, 0.0, 0.0, ACTIVATION)

    final_channels: tl.constexpr = COUT // (SHUFFLE * SHUFFLE)
    final_c = channel // (SHUFFLE * SHUFFLE)
    sub_y = (channel // SHUFFLE) % SHUFFLE
    sub_x = channel % SHUFFLE
    final_y = out_y[:, None] * SHUFFLE + sub_y[None, :]
    final_x = out_x[:, None] * SHUFFLE + sub_x[None, :]
    offsets = (final_y * (out_w * SHUFFLE) + final_x) * final_channels + final_c[None, :]
    mask = pixel_mask[:, None] & channel_mask[None, :]
    if GATE != "none":
        gate = apply_activation(y, 0.0, 0.0, 0.0, 0.0, GATE) * gate_scale + gate_shift
        y = (y + tl.load(skip_ptr + offsets, mask=mask, other=0.0).to(tl.float32)) * gate
    elif SKIP == "same":
        y += tl.load(skip_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    elif SKIP != "none":
        y += sample(skip_ptr, final_y, final_x, final_c[None, :], mask, skip_h, skip_w,
                    final_channels, SKIP_FACTOR, SKIP)
    tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


def fit_to_epilogue(configs: list[dict], skip: str) -> list[dict]:
    """Tile configs adjusted so that a resized skip does not spill registers: more warps
    for the same tile first (keeps the weight reuse), a shorter tile if that is not enough."""
    if skip in ("none", "same"):
        return configs
    fitted = []
    for config in configs:
        config = dict(config)
        while config["BLOCK_M"] * config["BLOCK_N"] > (
            RESIZED_SKIP_VALUES_PER_THREAD * 32 * config["num_warps"]
        ):
            if config["num_warps"] < MAX_WARPS:
                config["num_warps"] *= 2
            else:
                config["BLOCK_M"] //= 2
        if config not in fitted:
            fitted.append(config)
    return fitted


@dataclass
class Epilogue:
    """What a conv layer applies to its accumulator; defaults are the identity."""

    activation: str = "none"  # an ACTIVATIONS entry other than clamp
    slope: torch.Tensor | None = None  # prelu: one float32 slope per conv output channel
    alpha: float = 0.0  # leaky_relu
    shuffle: int = 1
    skip: str = "none"  # a SKIPS entry; needs a skip tensor unless "none"
    gate: str = "none"  # or an ir.GATE_ACTIVATIONS entry: needs skip "same", shuffle 1
    gate_scale: float = 1.0
    gate_shift: float = 0.0


@dataclass
class EpilogueArgs:
    slope: torch.Tensor
    skip: torch.Tensor
    skip_h: int
    skip_w: int
    alpha: float
    gate_scale: float
    gate_shift: float
    constexprs: dict = field(default_factory=dict)


def epilogue_args(epilogue: Epilogue, out: torch.Tensor, skip: torch.Tensor | None):
    """Kernel arguments for `epilogue` writing `out` (N x H x W x C, after the shuffle).

    Unused pointers are passed as `out`: the kernel never dereferences them.
    """
    assert epilogue.activation in ("none", *ir.EPILOGUE_ACTIVATIONS) and epilogue.skip in SKIPS
    assert (skip is None) == (epilogue.skip == "none")
    assert (epilogue.slope is not None) == (epilogue.activation == "prelu")
    assert epilogue.gate == "none" or (
        epilogue.gate in ir.GATE_ACTIVATIONS and epilogue.skip == "same" and epilogue.shuffle == 1
    )
    skip_h, skip_w = (1, 1) if skip is None else skip.shape[1:3]
    factor = out.shape[1] // skip_h
    if epilogue.skip == "same":
        assert skip.shape == out.shape
    elif skip is not None:
        assert skip.shape[0] == out.shape[0] and skip.shape[3] == out.shape[3]
        assert (skip_h * factor, skip_w * factor) == out.shape[1:3], "integer skip factor"
    return EpilogueArgs(
        slope=out if epilogue.slope is None else epilogue.slope,
        skip=out if skip is None else skip,
        skip_h=skip_h,
        skip_w=skip_w,
        alpha=float(epilogue.alpha),
        gate_scale=float(epilogue.gate_scale),
        gate_shift=float(epilogue.gate_shift),
        constexprs=dict(ACTIVATION=epilogue.activation, SHUFFLE=epilogue.shuffle,
                        SKIP=epilogue.skip, SKIP_FACTOR=factor if skip is not None else 1,
                        GATE=epilogue.gate),
    )
