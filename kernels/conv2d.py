"""2-D convolution on NHWC tensors as an implicit GEMM with the epilogue fused.

GEMM view: M = output pixels of one image, N = output channels, K = kh * kw * Cin.
The weight is packed once to a K x Cout matrix with K ordered (ky, kx, ci), so the
A tile of one K step is a gather of whole input pixels (Cin contiguous in NHWC) and
the B tile is a dense slice of the packed weight. Inputs may be float32, float16 or
bfloat16; the dot accumulates in float32 and the epilogue runs in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from fastsr.kernels.epilogue import (
    Epilogue,
    epilogue_args,
    fit_to_epilogue,
    store_conv_output,
)
from fastsr.kernels.launch import dot_dtype, launch_target
from fastsr.kernels.tiles import fit_tile, tuned

# Tile configurations. SR nets have 1..256 channels and millions of pixels, so tiles are
# long along pixels (M) and cover the channels (N) in one or two tiles: the gathered
# input tile is then read once per output pixel block. fit_tile shrinks N and K tiles
# to the layer's channel counts, so the list serves 12-channel tails and 64-channel
# bodies alike. The first GPU config is the default the AOT check compiles.
CONFIGS = {
    "gpu": [
        {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3},
        {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 4},
        {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32, "num_warps": 8, "num_stages": 3},
        {"BLOCK_M": 256, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 8, "num_stages": 3},
        {"BLOCK_M": 128, "BLOCK_N": 32, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3},
        # K = 64: a whole 64-channel fp16 pixel (one 128-byte line) per gathered row.
        {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3},
    ],
    # The interpreter pays per program instance, not per element: few, big tiles.
    "interpreter": [{"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64, "num_warps": 4,
                     "num_stages": 1}],
}
# Below this many input channels a K tile of one tap would be mostly padding, so the K
# axis runs over (ky, kx, ci) flattened instead (image input layers, Cin = 1 or 3).
MIN_CHANNELS_PER_TAP = 16


@dataclass
class Conv2dWeights:
    """A conv2d layer's parameters, packed once for the kernel."""

    weight: torch.Tensor  # (kh * kw * cin) x cout, ordered (ky, kx, ci); the compute dtype
    bias: torch.Tensor  # cout, float32
    kernel_size: tuple[int, int]
    stride: int
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def in_channels(self) -> int:
        return self.weight.shape[0] // (self.kernel_size[0] * self.kernel_size[1])

    @property
    def out_channels(self) -> int:
        return self.weight.shape[1]


def pack_conv2d(weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding,
                dilation, dtype: torch.dtype) -> Conv2dWeights:
    """From PyTorch's OIHW weight (groups = 1)."""
    cout, cin, kh, kw = weight.shape
    packed = weight.permute(2, 3, 1, 0).reshape(kh * kw * cin, cout).to(dtype).contiguous()
    bias = torch.zeros(cout, device=weight.device) if bias is None else bias
    return Conv2dWeights(packed, bias.float().contiguous(), (kh, kw), stride, tuple(padding),
                         tuple(dilation))


@triton.jit
def conv2d_kernel(
    x_ptr, w_ptr, bias_ptr, slope_ptr, skip_ptr, out_ptr,
    in_h, in_w, out_h, out_w, skip_h, skip_w, alpha, gate_scale, gate_shift,
    CIN: tl.constexpr, COUT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    STRIDE: tl.constexpr, PAD_H: tl.constexpr, PAD_W: tl.constexpr,
    DIL_H: tl.constexpr, DIL_W: tl.constexpr, GATHER_TAPS: tl.constexpr,
    ACTIVATION: tl.constexpr, SHUFFLE: tl.constexpr, SKIP: tl.constexpr,
    SKIP_FACTOR: tl.constexpr, GATE: tl.constexpr, DOT_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # One image per grid row, so offsets inside an image fit int32 at any batch size.
    image = tl.program_id(2).to(tl.int64)
    x_ptr += image * in_h * in_w * CIN
    out_ptr += image * out_h * out_w * COUT
    skip_ptr += image * skip_h * skip_w * (COUT // (SHUFFLE * SHUFFLE))

    pixel = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    pixel_mask = pixel < out_h * out_w
    out_y = pixel // out_w
    out_x = pixel % out_w
    channel = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    channel_mask = channel < COUT
    top = out_y * STRIDE - PAD_H
    left = out_x * STRIDE - PAD_W
    k_lane = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)

    if GATHER_TAPS:
        for k0 in range(0, KH * KW * CIN, BLOCK_K):
            k = k0 + k_lane
            tap = k // CIN
            iy = top[:, None] + (tap // KW * DIL_H)[None, :]
            ix = left[:, None] + (tap % KW * DIL_W)[None, :]
            inside = (iy >= 0) & (iy < in_h) & (ix >= 0) & (ix < in_w)
            a_mask = pixel_mask[:, None] & (k < KH * KW * CIN)[None, :] & inside
            a = tl.load(x_ptr + (iy * in_w + ix) * CIN + (k % CIN)[None, :], mask=a_mask,
                        other=0.0)
            b_mask = (k < KH * KW * CIN)[:, None] & channel_mask[None, :]
            b = tl.load(w_ptr + k[:, None] * COUT + channel[None, :], mask=b_mask, other=0.0)
            # "ieee": float32 inputs must not be rounded to tf32 (1e-4 parity); the
            # option is ignored for float16/bfloat16 inputs.
            acc = tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE), acc, input_precision="ieee")
    else:
        # One K step = one tap x BLOCK_K channels: the pixel gather and its bounds mask
        # are per row (BLOCK_M), and the channel lanes are contiguous loads.
        CIN_STEPS: tl.constexpr = (CIN + BLOCK_K - 1) // BLOCK_K
        for step in range(KH * KW * CIN_STEPS):
            tap = step // CIN_STEPS
            ci = (step % CIN_STEPS) * BLOCK_K + k_lane
            iy = top + tap // KW * DIL_H
            ix = left + tap % KW * DIL_W
            row_mask = pixel_mask & (iy >= 0) & (iy < in_h) & (ix >= 0) & (ix < in_w)
            a_ptrs = x_ptr + ((iy * in_w + ix) * CIN)[:, None] + ci[None, :]
            b_ptrs = w_ptr + (tap * CIN + ci)[:, None] * COUT + channel[None, :]
            if CIN % BLOCK_K == 0:
                # No channel mask: keeps the A loads fully vectorised.
                a = tl.load(a_ptrs, mask=row_mask[:, None], other=0.0)
                b = tl.load(b_ptrs, mask=channel_mask[None, :], other=0.0)
            else:
                a = tl.load(a_ptrs, mask=row_mask[:, None] & (ci < CIN)[None, :], other=0.0)
                b = tl.load(b_ptrs, mask=(ci < CIN)[:, None] & channel_mask[None, :],
                            other=0.0)
            acc = tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE), acc, input_precision="ieee")

    store_conv_output(acc, out_y, out_x, pixel_mask, channel, channel_mask,
                      bias_ptr, slope_ptr, alpha, skip_ptr, out_ptr,
                      out_w, skip_h, skip_w, gate_scale, gate_shift, COUT, ACTIVATION, SHUFFLE,
                      SKIP, SKIP_FACTOR, GATE)


def _k_per_step(cin: int, kh: int, kw: int) -> int:
    return kh * kw * cin if cin < MIN_CHANNELS_PER_TAP else cin


def _fit(configs: list[dict], args: dict) -> list[dict]:
    k_per_step = _k_per_step(args["CIN"], args["KH"], args["KW"])
    return fit_to_epilogue(fit_tile(configs, k_per_step, args["COUT"]), args["SKIP"])


_tuned_kernel = tuned(conv2d_kernel, CONFIGS["gpu"], _fit,
                      key=["CIN", "COUT", "KH", "KW", "STRIDE", "out_h", "out_w"])


def conv2d(layer: Conv2dWeights, x: torch.Tensor, out: torch.Tensor, epilogue: Epilogue,
           skip: torch.Tensor | None = None) -> torch.Tensor:
    """out = epilogue(conv2d(x)); x is N x H x W x Cin, out the epilogue's final shape."""
    n, in_h, in_w, cin = x.shape
    assert cin == layer.in_channels and x.is_contiguous() and out.is_contiguous()
    out_h, out_w = in_h // layer.stride, in_w // layer.stride
    r = epilogue.shuffle
    assert out.shape == (n, out_h * r, out_w * r, layer.out_channels // (r * r)), out.shape
    kh, kw = layer.kernel_size
    args = epilogue_args(epilogue, out, skip)
    constexprs = dict(
        CIN=cin, COUT=layer.out_channels, KH=kh, KW=kw, STRIDE=layer.stride,
        PAD_H=layer.padding[0], PAD_W=layer.padding[1], DIL_H=layer.dilation[0],
        DIL_W=layer.dilation[1], GATHER_TAPS=cin < MIN_CHANNELS_PER_TAP,
        DOT_DTYPE=dot_dtype(layer.weight), **args.constexprs,
    )

    def grid(meta):
        return (triton.cdiv(out_h * out_w, meta["BLOCK_M"]),
                triton.cdiv(layer.out_channels, meta["BLOCK_N"]), n)

    pointers_and_sizes = (x, layer.weight, layer.bias, args.slope, args.skip, out,
                          in_h, in_w, out_h, out_w, args.skip_h, args.skip_w, args.alpha,
                          args.gate_scale, args.gate_shift)
    if launch_target(x) == "gpu":
        _tuned_kernel[grid](*pointers_and_sizes, **constexprs)
    else:
        (config,) = _fit(CONFIGS["interpreter"], constexprs)
        conv2d_kernel[grid](*pointers_and_sizes, **constexprs, **config)
    return out
