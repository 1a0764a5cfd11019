"""Memory-bound NHWC ops for what the passes could not fuse into a convolution.

add / mul of equal shapes, per-channel affine followed by any activation, a standalone
pixel shuffle, and concat as copies into channel slices of a preallocated output.
Every kernel grids over (blocks of one image, images), so offsets stay int32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastsr.kernels.epilogue import ACTIVATIONS, apply_activation
from fastsr.kernels.launch import launch_target

# Elements per program: a GPU block of 1024 with 4 warps is 8 elements a thread, enough
# loads in flight to saturate bandwidth; the interpreter prefers few large programs.
BLOCK = {"gpu": 1024, "interpreter": 16384}
NUM_WARPS = 4


def _grid(per_image: int, images: int, target: str) -> tuple[int, int]:
    return (triton.cdiv(per_image, BLOCK[target]), images)


@triton.jit
def _image_offsets(per_image, BLOCK_SIZE: tl.constexpr):
    image_base = tl.program_id(1).to(tl.int64) * per_image
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    return image_base, offsets, offsets < per_image


@triton.jit
def binary_kernel(a_ptr, b_ptr, out_ptr, per_image, OP: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    base, offsets, mask = _image_offsets(per_image, BLOCK_SIZE)
    a = tl.load(a_ptr + base + offsets, mask=mask).to(tl.float32)
    b = tl.load(b_ptr + base + offsets, mask=mask).to(tl.float32)
    y = a + b if OP == "add" else a * b
    tl.store(out_ptr + base + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


def binary(op: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = a + b or a * b, all of one shape."""
    assert op in ("add", "mul") and a.shape == b.shape == out.shape
    per_image, target = a[0].numel(), launch_target(a)
    binary_kernel[_grid(per_image, a.shape[0], target)](
        a, b, out, per_image, OP=op, BLOCK_SIZE=BLOCK[target], num_warps=NUM_WARPS)
    return out


@triton.jit
def affine_activation_kernel(x_ptr, scale_ptr, shift_ptr, slope_ptr, out_ptr, per_image,
                             alpha, low, high, CHANNELS: tl.constexpr, AFFINE: tl.constexpr,
                             ACTIVATION: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    base, offsets, mask = _image_offsets(per_image, BLOCK_SIZE)
    channel = offsets % CHANNELS
    y = tl.load(x_ptr + base + offsets, mask=mask).to(tl.float32)
    if AFFINE:
        y = (y * tl.load(scale_ptr + channel, mask=mask)
             + tl.load(shift_ptr + channel, mask=mask))
    slope = tl.load(slope_ptr + channel, mask=mask) if ACTIVATION == "prelu" else 0.0
    y = apply_activation(y, slope, alpha, low, high, ACTIVATION)
    tl.store(out_ptr + base + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


def affine_activation(x: torch.Tensor, out: torch.Tensor, scale: torch.Tensor | None = None,
                      shift: torch.Tensor | None = None, activation: str = "none",
                      slope: torch.Tensor | None = None, alpha: float = 0.0,
                      low: float = 0.0, high: float = 0.0) -> torch.Tensor:
    """out = activation(x * scale + shift), scale/shift/slope float32 per channel."""
    assert activation in ACTIVATIONS and x.shape == out.shape
    assert (scale is None) == (shift is None) and (slope is None) == (activation != "prelu")
    per_image, target = x[0].numel(), launch_target(x)
    affine_activation_kernel[_grid(per_image, x.shape[0], target)](
        x, x if scale is None else scale, x if shift is None else shift,
        x if slope is None else slope, out, per_image, float(alpha), float(low), float(high),
        CHANNELS=x.shape[3], AFFINE=scale is not None, ACTIVATION=activation,
        BLOCK_SIZE=BLOCK[target], num_warps=NUM_WARPS)
    return out


@triton.jit
def pixel_shuffle_kernel(x_ptr, out_ptr, in_h, in_w, CHANNELS: tl.constexpr,
                         FACTOR: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    """out channel c of pixel (y, x) = in channel c*r*r + (y%r)*r + x%r of (y//r, x//r)."""
    per_image = in_h * in_w * FACTOR * FACTOR * CHANNELS
    base, offsets, mask = _image_offsets(per_image, BLOCK_SIZE)
    c = offsets % CHANNELS
    pixel = offsets // CHANNELS
    y = pixel // (in_w * FACTOR)
    x = pixel % (in_w * FACTOR)
    source = ((y // FACTOR * in_w + x // FACTOR) * (CHANNELS * FACTOR * FACTOR)
              + c * FACTOR * FACTOR + y % FACTOR * FACTOR + x % FACTOR)
    tl.store(out_ptr + base + offsets, tl.load(x_ptr + base + source, mask=mask), mask=mask)


def pixel_shuffle(x: torch.Tensor, out: torch.Tensor, factor: int) -> torch.Tensor:
    """out (N x rH x rW x C) = pixel_shuffle(x (N x H x W x C*r*r))."""
    n, h, w, c = x.shape
    assert out.shape == (n, h * factor, w * factor, c // (factor * factor))
    target = launch_target(x)
    pixel_shuffle_kernel[_grid(x[0].numel(), n, target)](
        x, out, h, w, CHANNELS=out.shape[3], FACTOR=factor, BLOCK_SIZE=BLOCK[target],
        num_warps=NUM_WARPS)
    return out


@triton.jit
def pixel_unshuffle_kernel(x_ptr, out_ptr, out_h, out_w, CHANNELS: tl.constexpr,
                           FACTOR: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    """out channel c*r*r + i*r + j of pixel (y, x) = in channel c of (y*r + i, x*r + j)."""
    per_image = out_h * out_w * FACTOR * FACTOR * CHANNELS
    base, offsets, mask = _image_offsets(per_image, BLOCK_SIZE)
    k = offsets % (CHANNELS * FACTOR * FACTOR)
    pixel = offsets // (CHANNELS * FACTOR * FACTOR)
    c, tap = k // (FACTOR * FACTOR), k % (FACTOR * FACTOR)
    y = pixel // out_w * FACTOR + tap // FACTOR
    x = pixel % out_w * FACTOR + tap % FACTOR
    source = (y * out_w * FACTOR + x) * CHANNELS + c
    tl.store(out_ptr + base + offsets, tl.load(x_ptr + base + source, mask=mask), mask=mask)


def pixel_unshuffle(x: torch.Tensor, out: torch.Tensor, factor: int) -> torch.Tensor:
    """out (N x H/r x W/r x C*r*r) = pixel_unshuffle(x (N x H x W x C))."""
    n, h, w, c = x.shape
    assert out.shape == (n, h // factor, w // factor, c * factor * factor)
    target = launch_target(x)
    pixel_unshuffle_kernel[_grid(x[0].numel(), n, target)](
        x, out, h // factor, w // factor, CHANNELS=c, FACTOR=factor,
        BLOCK_SIZE=BLOCK[target], num_warps=NUM_WARPS)
    return out


@triton.jit
def copy_channels_kernel(x_ptr, out_ptr, pixels, first_channel, CHANNELS: tl.constexpr,
                         OUT_CHANNELS: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    base, offsets, mask = _image_offsets(pixels * CHANNELS, BLOCK_SIZE)
    target = offsets // CHANNELS * OUT_CHANNELS + first_channel + offsets % CHANNELS
    value = tl.load(x_ptr + base + offsets, mask=mask)
    out_base = tl.program_id(1).to(tl.int64) * pixels * OUT_CHANNELS
    tl.store(out_ptr + out_base + target, value.to(out_ptr.dtype.element_ty), mask=mask)


def concat(parts: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """out = parts concatenated along channels (NHWC: each part fills a channel slice)."""
    n, h, w, total = out.shape
    target = launch_target(out)
    first = 0
    for part in parts:
        channels = part.shape[3]
        copy_channels_kernel[_grid(h * w * channels, n, target)](
            part, out, h * w, first, CHANNELS=channels, OUT_CHANNELS=total,
            BLOCK_SIZE=BLOCK[target], num_warps=NUM_WARPS)
        first += channels
    assert first == total
    return out
