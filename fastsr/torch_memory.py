"""Peak memory of a module run in PyTorch (the fallback path), so its frames tile.

A run is measured by watching every tensor torch's ops create (a dispatch mode) and
each storage's release (a weakref on the storage, which torch keeps as long as any
view holds it): the peak of the bytes alive at once. Two probe runs fit bytes =
fixed + per_pixel * padded input pixels, which the tile planner evaluates at any size
the way it asks a kernel plan for its bytes. What torch's ops allocate outside tensors
(oneDNN scratch) is not seen; tests/test_torch_memory.py checks the model against the
process's peak resident memory.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# LR sides of the two probes (rounded up to the module's alignment): big enough that the
# per-pixel activations dominate the fixed part, small enough to cost a fraction of a frame.
PROBE_SIDES = (32, 64)


class _LiveBytes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.now = self.peak = 0
        self._alive: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self._alive.discard(key)
        self.now -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes and key not in self._alive:
                self._alive.add(key)
                self.now += nbytes
                self.peak = max(self.peak, self.now)
                weakref.finalize(storage, self._release, key, nbytes)
        return out


def measure_peak(call, x: torch.Tensor) -> int:
    """Peak bytes of the tensors `call(x)` holds at once, its output included."""
    tracker = _LiveBytes()
    with torch.no_grad(), tracker:
        out = call(x)
        del out
    return tracker.peak


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class MemoryModel:
    """bytes(batch, h, w) = fixed + per_pixel * batch * padded h * padded w."""

    fixed: float
    per_pixel: float
    align: int

    def bytes(self, batch: int, height: int, width: int) -> int:
        pixels = batch * _round_up(height, self.align) * _round_up(width, self.align)
        return int(self.fixed + self.per_pixel * pixels)


def probe(call, channels: int, align: int = 1, minimum: int = 0) -> MemoryModel:
    """Fit the memory model of `call` (N x C x H x W in) from two small runs."""
    sides = [_round_up(max(side, minimum), align) for side in PROBE_SIDES]
    peaks = [measure_peak(call, torch.rand(1, channels, side, side)) for side in sides]
    per_pixel = max(0.0, (peaks[1] - peaks[0]) / (sides[1] ** 2 - sides[0] ** 2))
    return MemoryModel(max(0.0, peaks[0] - per_pixel * sides[0] ** 2), per_pixel, align)
