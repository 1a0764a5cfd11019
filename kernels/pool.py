"""Global average pooling over NHWC images, and scaling channels by a pooled vector.

Together they run channel attention (squeeze-and-excitation) blocks: pool, two 1x1
convs on the N x 1 x 1 x C result, then every pixel scaled by the sigmoid gates.

The mean of an image is summed in two passes: many programs each sum a band of rows
into a partial, then one pass sums the partials. One program per image would leave a
GPU nearly idle on a 1080p frame; atomics would make the result depend on run order.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from fastsr.kernels.launch import launch_target

# ROWS: pixels each program of the first pass sums (a 1080p frame gives ~500 programs).
POOL = {
    "gpu": {"ROWS": 4096, "BLOCK_ROWS": 64, "BLOCK_C": 64, "num_warps": 4},
    "interpreter": {"ROWS": 1 << 20, "BLOCK_ROWS": 1024, "BLOCK_C": 64, "num_warps": 4},
}
SCALE_BLOCK = {"gpu": 1024, "interpreter": 16384}


@triton.jit
def channel_sum_kernel(x_ptr, out_ptr, rows, multiplier, CHANNELS: tl.constexpr,
                       ROWS: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """out[image, band, c] = multiplier * sum of x[image, band*ROWS : (band+1)*ROWS, c]."""
    image = tl.program_id(2).to(tl.int64)
    band = tl.program_id(0)
    x_ptr += image * rows * CHANNELS
    out_ptr += (image * tl.num_programs(0) + band) * CHANNELS
    channel = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    total = tl.zeros((BLOCK_ROWS, BLOCK_C), dtype=tl.float32)
    for row0 in range(band * ROWS, tl.minimum(band * ROWS + ROWS, rows), BLOCK_ROWS):
        row = row0 + tl.arange(0, BLOCK_ROWS)
        mask = (row < rows)[:, None] & (channel < CHANNELS)[None, :]
        total += tl.load(x_ptr + row[:, None] * CHANNELS + channel[None, :], mask=mask,
                         other=0.0).to(tl.float32)
    tl.store(out_ptr + channel, tl.sum(total, axis=0) * multiplier, mask=channel < CHANNELS)


def _channel_sum(x: torch.Tensor, out: torch.Tensor, multiplier: float) -> torch.Tensor:
    """x is N x rows x C; out N x bands x C, bands = ceil(rows / ROWS)."""
    n, rows, channels = x.shape
    config = POOL[launch_target(x)]
    grid = (triton.cdiv(rows, config["ROWS"]), triton.cdiv(channels, config["BLOCK_C"]), n)
    assert out.shape == (n, grid[0], channels)
    channel_sum_kernel[grid](x, out, rows, multiplier, CHANNELS=channels, **config)
    return out


def global_avg_pool(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out (N x 1 x 1 x C, float32) = mean of x (N x H x W x C) over H and W."""
    n, h, w, c = x.shape
    rows = x.view(n, h * w, c)
    bands = triton.cdiv(h * w, POOL[launch_target(x)]["ROWS"])
    if bands == 1:
        return _channel_sum(rows, out.view(n, 1, c), 1.0 / (h * w)).view(n, 1, 1, c)
    partial = torch.empty(n, bands, c, device=x.device, dtype=torch.float32)
    _channel_sum(rows, partial, 1.0)
    return _channel_sum(partial, out.view(n, 1, c), 1.0 / (h * w)).view(n, 1, 1, c)


@triton.jit
def scale_channels_kernel(x_ptr, gate_ptr, skip_ptr, out_ptr, per_image, CHANNELS: tl.constexpr,
                          GATES: tl.constexpr, SKIP: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    """out[n, p, c] = x[n, p, c] * gate[n, c] (or gate[n, 0] when GATES == 1), plus
    skip[n, p, c] when SKIP."""
    image = tl.program_id(1).to(tl.int64)
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < per_image
    gate_index = offsets % CHANNELS if GATES > 1 else offsets * 0
    gate = tl.load(gate_ptr + image * GATES + gate_index, mask=mask).to(tl.float32)
    x = tl.load(x_ptr + image * per_image + offsets, mask=mask).to(tl.float32)
    y = x * gate
    if SKIP:
        y += tl.load(skip_ptr + image * per_image + offsets, mask=mask).to(tl.float32)
    tl.store(out_ptr + image * per_image + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


def scale_channels(x: torch.Tensor, gate: torch.Tensor, out: torch.Tensor,
                   skip: torch.Tensor | None = None) -> torch.Tensor:
    """out = x (N x H x W x C) * gate (N x 1 x 1 x C or N x 1 x 1 x 1) [+ skip (x's shape)]."""
    n, per_image = x.shape[0], x[0].numel()
    assert skip is None or skip.shape == x.shape
    block = SCALE_BLOCK[launch_target(x)]
    scale_channels_kernel[(triton.cdiv(per_image, block), n)](
        x, gate, x if skip is None else skip, out, per_image, CHANNELS=x.shape[3],
        GATES=gate.shape[3], SKIP=skip is not None, BLOCK_SIZE=block, num_warps=4)
    return out
