"""Integer-factor resize of NHWC tensors (nearest, bilinear, bicubic) with PyTorch's semantics.

`sample` is also called from the convolution epilogue, where it computes the bicubic
global skip of the last conv without ever writing the upscaled image to memory.

The coordinate rules are those of `F.interpolate(..., align_corners=False)`:
  bicubic  src = (dst + 0.5) / f - 0.5, Keys kernel a = -0.75, tap indices clamped
  bilinear the same source index, but clamped at 0 before it is split
  nearest  src = floor(dst / f), which for an integer f is exact integer division
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastsr.kernels.launch import launch_target

from fastsr.graph import ir

MODES = tuple(ir.RESIZE_MODES)

# Output values per program. On a GPU, 512 over 4 warps = 4 values a thread, each with
# up to 16 gathers in flight: the AOT check measured 72-80 registers, against 128-168 at
# 1024 (8 a thread), so twice the warps fit on an SM to hide the gather latency.
# The interpreter pays per program, so it takes big blocks.
BLOCK = {"gpu": 512, "interpreter": 4096}
NUM_WARPS = 4
CUBIC_A = tl.constexpr(ir.CUBIC_A)


@triton.jit
def _cubic_near(t):
    """Keys weight for a tap at distance |t| <= 1."""
    return ((CUBIC_A + 2.0) * t - (CUBIC_A + 3.0)) * t * t + 1.0


@triton.jit
def _cubic_far(t):
    """Keys weight for a tap at distance 1 < |t| < 2."""
    return ((CUBIC_A * t - 5.0 * CUBIC_A) * t + 8.0 * CUBIC_A) * t - 4.0 * CUBIC_A


@triton.jit
def _load(src_ptr, row, col, channel, in_w, CHANNELS: tl.constexpr, mask):
    offsets = (row * in_w + col) * CHANNELS + channel
    return tl.load(src_ptr + offsets, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _clamp(index, size):
    return tl.minimum(tl.maximum(index, 0), size - 1)


@triton.jit
def _cubic_row(src_ptr, row, cols, weights, channel, in_w, CHANNELS: tl.constexpr, mask):
    value = _load(src_ptr, row, cols[0], channel, in_w, CHANNELS, mask) * weights[0]
    value += _load(src_ptr, row, cols[1], channel, in_w, CHANNELS, mask) * weights[1]
    value += _load(src_ptr, row, cols[2], channel, in_w, CHANNELS, mask) * weights[2]
    value += _load(src_ptr, row, cols[3], channel, in_w, CHANNELS, mask) * weights[3]
    return value


@triton.jit
def _bicubic(src_ptr, y, x, channel, mask, in_h, in_w, CHANNELS: tl.constexpr,
             FACTOR: tl.constexpr):
    sy = (y.to(tl.float32) + 0.5) * (1.0 / FACTOR) - 0.5
    sx = (x.to(tl.float32) + 0.5) * (1.0 / FACTOR) - 0.5
    fy = tl.floor(sy)
    fx = tl.floor(sx)
    ty = sy - fy
    tx = sx - fx
    y0 = fy.to(tl.int32)
    x0 = fx.to(tl.int32)
    cols = (_clamp(x0 - 1, in_w), _clamp(x0, in_w), _clamp(x0 + 1, in_w), _clamp(x0 + 2, in_w))
    wx = (_cubic_far(tx + 1.0), _cubic_near(tx), _cubic_near(1.0 - tx), _cubic_far(2.0 - tx))
    value = _cubic_row(src_ptr, _clamp(y0 - 1, in_h), cols, wx, channel, in_w, CHANNELS,
                       mask) * _cubic_far(ty + 1.0)
    value += _cubic_row(src_ptr, _clamp(y0, in_h), cols, wx, channel, in_w, CHANNELS,
                        mask) * _cubic_near(ty)
    value += _cubic_row(src_ptr, _clamp(y0 + 1, in_h), cols, wx, channel, in_w, CHANNELS,
                        mask) * _cubic_near(1.0 - ty)
    value += _cubic_row(src_ptr, _clamp(y0 + 2, in_h), cols, wx, channel, in_w, CHANNELS,
                        mask) * _cubic_far(2.0 - ty)
    return value


@triton.jit
def _bilinear(src_ptr, y, x, channel, mask, in_h, in_w, CHANNELS: tl.constexpr,
              FACTOR: tl.constexpr):
    sy = tl.maximum((y.to(tl.float32) + 0.5) * (1.0 / FACTOR) - 0.5, 0.0)
    sx = tl.maximum((x.to(tl.float32) + 0.5) * (1.0 / FACTOR) - 0.5, 0.0)
    y0 = sy.to(tl.int32)  # sy >= 0, so truncation is floor
    x0 = sx.to(tl.int32)
    ty = sy - y0.to(tl.float32)
    tx = sx - x0.to(tl.float32)
    y1 = tl.minimum(y0 + 1, in_h - 1)
    x1 = tl.minimum(x0 + 1, in_w - 1)
    top = (_load(src_ptr, y0, x0, channel, in_w, CHANNELS, mask) * (1.0 - tx)
           + _load(src_ptr, y0, x1, channel, in_w, CHANNELS, mask) * tx)
    bottom = (_load(src_ptr, y1, x0, channel, in_w, CHANNELS, mask) * (1.0 - tx)
              + _load(src_ptr, y1, x1, channel, in_w, CHANNELS, mask) * tx)
    return top * (1.0 - ty) + bottom * ty


@triton.jit
def sample(src_ptr, y, x, channel, mask, in_h, in_w,
           CHANNELS: tl.constexpr, FACTOR: tl.constexpr, MODE: tl.constexpr):
    """Value at output pixel (y, x), channel `channel` of `src` upscaled by FACTOR; float32.

    src_ptr points at one H x W x CHANNELS image; y, x, channel, mask broadcast together.
    """
    if MODE == "nearest":
        value = _load(src_ptr, y // FACTOR, x // FACTOR, channel, in_w, CHANNELS, mask)
    elif MODE == "bilinear":
        value = _bilinear(src_ptr, y, x, channel, mask, in_h, in_w, CHANNELS, FACTOR)
    else:
        value = _bicubic(src_ptr, y, x, channel, mask, in_h, in_w, CHANNELS, FACTOR)
    return value


@triton.jit
def resize_kernel(src_ptr, out_ptr, in_h, in_w,
                  CHANNELS: tl.constexpr, FACTOR: tl.constexpr, MODE: tl.constexpr,
                  BLOCK_SIZE: tl.constexpr):
    image = tl.program_id(1).to(tl.int64)
    out_w = in_w * FACTOR
    per_image = in_h * FACTOR * out_w * CHANNELS
    src_ptr += image * in_h * in_w * CHANNELS
    out_ptr += image * per_image
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < per_image
    channel = offsets % CHANNELS
    pixel = offsets // CHANNELS
    value = sample(src_ptr, pixel // out_w, pixel % out_w, channel, mask, in_h, in_w,
                   CHANNELS, FACTOR, MODE)
    tl.store(out_ptr + offsets, value.to(out_ptr.dtype.element_ty), mask=mask)


def resize(src: torch.Tensor, out: torch.Tensor, mode: str, factor: int) -> torch.Tensor:
    """out (N x fH x fW x C) = src (N x H x W x C) resized by the integer `factor`."""
    n, h, w, c = src.shape
    assert mode in MODES and out.shape == (n, h * factor, w * factor, c)
    block = BLOCK[launch_target(src)]
    grid = (triton.cdiv(h * factor * w * factor * c, block), n)
    resize_kernel[grid](src, out, h, w, CHANNELS=c, FACTOR=factor, MODE=mode,
                        BLOCK_SIZE=block, num_warps=NUM_WARPS)
    return out
