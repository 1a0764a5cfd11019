"""How far a module run in PyTorch (the fallback path) reads around a pixel, for tiles.

fastsr cannot read a receptive field from a module it could not capture, so it measures
one: a pixel in the middle of a random probe is changed and the farthest output pixel
that moves bounds the reach. The probe is one alignment step off the partition grid's
phase at most, so `align` (the attention window) is added. A module whose influence
reaches the probe's border (deep window-attention stacks: SwinIR's 24 layers reach
about 170 pixels) gets the probe's half-width, `MARGIN`: tiles then overlap by that much
and agree closely rather than exactly.
"""

from __future__ import annotations

import torch

PROBE_SIDE = 96  # LR pixels; twice the margin
MARGIN = PROBE_SIDE // 2
_MOVED = 1e-6  # relative change that counts: above float noise, far below any real effect


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@torch.no_grad()
def measure_reach(call, channels: int, align: int = 1) -> int:
    """LR pixels around a pixel that can change its output, or MARGIN when the change
    reaches the probe's border."""
    side = _round_up(PROBE_SIDE, align)
    centre = side // 2
    x = torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(0))
    before = call(x.clone())
    x[..., centre, centre] += 0.5
    moved = (call(x) - before).abs().amax(dim=(0, 1))
    scale = moved.shape[-1] // side
    rows, cols = torch.nonzero(moved > _MOVED * max(1.0, float(before.abs().max())),
                               as_tuple=True)
    if len(rows) == 0:
        return align
    distance = torch.maximum((rows // scale - centre).abs(), (cols // scale - centre).abs())
    farthest = int(distance.max())
    return farthest + align if farthest < centre - 1 else MARGIN
