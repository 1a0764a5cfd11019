"""Transposed 2-D convolution that upscales by exactly its stride s, on NHWC tensors.

Output pixel oy receives input pixel iy through tap ky when oy = iy*s - pad + ky. Split
the output into s*s phases (oy mod s, ox mod s): within one phase only the taps with
ky = (oy + pad) mod s (mod s) contribute, and they read a plain stride-1 window of the
input. So each phase is an ordinary implicit GEMM over H x W pixels with about
(kh/s) x (kw/s) taps, and no multiply is spent on the zeros a naive
"dilate the input, then convolve" would insert. Dilation 1 only (what SR nets use).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastsr.kernels.conv2d import CONFIGS as CONV2D_CONFIGS
from fastsr.kernels.conv2d import Conv2dWeights
from fastsr.kernels.epilogue import (
    Epilogue,
    epilogue_args,
    fit_to_epilogue,
    store_conv_output,
)
from fastsr.kernels.launch import dot_dtype, launch_target
from fastsr.kernels.tiles import fit_tile, tuned

# Same shape of problem as conv2d (pixels x channels, K = taps x Cin), so its tiles: the
# two 64-channel ones and the narrow K = 64 one (phase GEMMs are small; wide tiles idle).
CONFIGS = {
    "gpu": [CONV2D_CONFIGS["gpu"][i] for i in (0, 1, 4)],
    "interpreter": CONV2D_CONFIGS["interpreter"],
}


def pack_conv_transpose2d(weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                          padding, dtype: torch.dtype) -> Conv2dWeights:
    """From PyTorch's IOHW weight (groups = 1, dilation = 1); packed (ky, kx, ci) x cout."""
    cin, cout, kh, kw = weight.shape
    packed = weight.permute(2, 3, 0, 1).reshape(kh * kw * cin, cout).to(dtype).contiguous()
    bias = torch.zeros(cout, device=weight.device) if bias is None else bias
    return Conv2dWeights(packed, bias.float().contiguous(), (kh, kw), stride, tuple(padding),
                         (1, 1))


@triton.jit
def conv_transpose2d_kernel(
    x_ptr, w_ptr, bias_ptr, slope_ptr, skip_ptr, out_ptr,
    in_h, in_w, skip_h, skip_w, alpha, gate_scale, gate_shift,
    CIN: tl.constexpr, COUT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    STRIDE: tl.constexpr, PAD_H: tl.constexpr, PAD_W: tl.constexpr,
    ACTIVATION: tl.constexpr, SHUFFLE: tl.constexpr, SKIP: tl.constexpr,
    SKIP_FACTOR: tl.constexpr, GATE: tl.constexpr, DOT_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    image = tl.program_id(2) // (STRIDE * STRIDE)
    phase = tl.program_id(2) % (STRIDE * STRIDE)
    phase_y = phase // STRIDE
    phase_x = phase % STRIDE
    out_h = in_h * STRIDE
    out_w = in_w * STRIDE
    x_ptr += image.to(tl.int64) * in_h * in_w * CIN
    out_ptr += image.to(tl.int64) * out_h * out_w * COUT
    skip_ptr += image.to(tl.int64) * skip_h * skip_w * (COUT // (SHUFFLE * SHUFFLE))

    # M runs over the H x W output pixels of this phase: (qy*s + phase_y, qx*s + phase_x).
    q = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    pixel_mask = q < in_h * in_w
    qy = q // in_w
    qx = q % in_w
    channel = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    channel_mask = channel < COUT
    k_lane = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)

    # The phase's first contributing tap; the others follow every STRIDE taps.
    first_ky = (phase_y + PAD_H) % STRIDE
    first_kx = (phase_x + PAD_W) % STRIDE
    TAPS_Y: tl.constexpr = (KH + STRIDE - 1) // STRIDE
    TAPS_X: tl.constexpr = (KW + STRIDE - 1) // STRIDE
    CIN_STEPS: tl.constexpr = (CIN + BLOCK_K - 1) // BLOCK_K
    for step in range(TAPS_Y * TAPS_X * CIN_STEPS):
        tap = step // CIN_STEPS
        ky = first_ky + tap // TAPS_X * STRIDE
        kx = first_kx + tap % TAPS_X * STRIDE
        # (phase + pad - k) is a multiple of STRIDE by the choice of k: exact division.
        iy = qy + (phase_y + PAD_H - ky) // STRIDE
        ix = qx + (phase_x + PAD_W - kx) // STRIDE
        ci = (step % CIN_STEPS) * BLOCK_K + k_lane
        row_mask = pixel_mask & (iy >= 0) & (iy < in_h) & (ix >= 0) & (ix < in_w)
        # Phases with fewer taps than TAPS_Y x TAPS_X load no weight rows for the excess
        # (a scalar limit rather than a scalar mask: the interpreter mistypes the latter).
        channels_used = tl.where((ky < KH) & (kx < KW), CIN, 0)
        k_mask = ci < channels_used
        a = tl.load(x_ptr + ((iy * in_w + ix) * CIN)[:, None] + ci[None, :],
                    mask=row_mask[:, None] & (ci < CIN)[None, :], other=0.0)
        b = tl.load(w_ptr + ((ky * KW + kx) * CIN + ci)[:, None] * COUT + channel[None, :],
                    mask=k_mask[:, None] & channel_mask[None, :], other=0.0)
        acc = tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE), acc, input_precision="ieee")

    store_conv_output(acc, qy * STRIDE + phase_y, qx * STRIDE + phase_x, pixel_mask,
                      channel, channel_mask, bias_ptr, slope_ptr, alpha, skip_ptr, out_ptr,
                      out_w, skip_h, skip_w, gate_scale, gate_shift, COUT, ACTIVATION, SHUFFLE,
                      SKIP, SKIP_FACTOR, GATE)


def _fit(configs: list[dict], args: dict) -> list[dict]:
    return fit_to_epilogue(fit_tile(configs, args["CIN"], args["COUT"]), args["SKIP"])


_tuned_kernel = tuned(conv_transpose2d_kernel, CONFIGS["gpu"], _fit,
                      key=["CIN", "COUT", "KH", "KW", "STRIDE", "in_h", "in_w"])


def conv_transpose2d(layer: Conv2dWeights, x: torch.Tensor, out: torch.Tensor,
                     epilogue: Epilogue, skip: torch.Tensor | None = None) -> torch.Tensor:
    """out = epilogue(conv_transpose2d(x)); the conv output is s*H x s*W x Cout."""
    n, in_h, in_w, cin = x.shape
    s, r = layer.stride, epilogue.shuffle
    assert cin == layer.in_channels and x.is_contiguous() and out.is_contiguous()
    assert out.shape == (n, in_h * s * r, in_w * s * r, layer.out_channels // (r * r))
    kh, kw = layer.kernel_size
    args = epilogue_args(epilogue, out, skip)
    constexprs = dict(CIN=cin, COUT=layer.out_channels, KH=kh, KW=kw, STRIDE=s,
                      PAD_H=layer.padding[0], PAD_W=layer.padding[1],
                      DOT_DTYPE=dot_dtype(layer.weight), **args.constexprs)

    def grid(meta):
        return (triton.cdiv(in_h * in_w, meta["BLOCK_M"]),
                triton.cdiv(layer.out_channels, meta["BLOCK_N"]), n * s * s)

    launch = (x, layer.weight, layer.bias, args.slope, args.skip, out, in_h, in_w,
              args.skip_h, args.skip_w, args.alpha, args.gate_scale, args.gate_shift)
    if launch_target(x) == "gpu":
        _tuned_kernel[grid](*launch, **constexprs)
    else:
        (config,) = _fit(CONFIGS["interpreter"], constexprs)
        conv_transpose2d_kernel[grid](*launch, **constexprs, **config)
    return out
