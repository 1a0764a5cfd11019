"""Frames padded to the size a model accepts; the caller crops the output back.

A spandrel model declares what input sizes it takes (`meta["size_requirements"]`:
minimum side, multiple_of, square); spandrel pads at the bottom and right by reflection
(at most size - 1 pixels, the rest replicating the edge) before the model runs. Some
forwards pad again themselves (`meta["padding"]`, found at capture: its multiple and
`F.pad` mode). The frame is padded here in the same two steps, before any tiling, so the
captured graph only ever sees sizes on which those paddings are the identity, and tiles
cut from the padded frame give what the whole padded frame gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fastsr.graph.ir import Graph
from fastsr.pixels import is_torch_tensor


@dataclass(frozen=True)
class FramePadding:
    minimum: int = 0
    multiple_of: int = 1
    square: bool = False
    inner_multiple: int = 1  # the forward's own pad_to_multiple
    inner_mode: str = "reflect"

    @property
    def alignment(self) -> int:
        return math.lcm(self.multiple_of, self.inner_multiple)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the model runs on for a height x width frame."""
        h, w = _outer_size(self, height, width)
        return _round_up(h, self.inner_multiple), _round_up(w, self.inner_multiple)

    def pad(self, pixels):
        """N x H x W x C pixels (numpy or torch) padded at the bottom and right."""
        _, height, width, _ = pixels.shape
        outer_h, outer_w = _outer_size(self, height, width)
        rows = _inner_indices(outer_h, self.inner_multiple, self.inner_mode)
        cols = _inner_indices(outer_w, self.inner_multiple, self.inner_mode)
        rows, cols = _reflect_indices(height, outer_h)[rows], _reflect_indices(width, outer_w)[cols]
        if len(rows) == height and len(cols) == width:
            return pixels
        return _take(_take(pixels, rows, 1), cols, 2)


def frame_padding(graph: Graph) -> FramePadding | None:
    """What frames for this graph are padded to, or None when it takes any size."""
    req = graph.meta.get("size_requirements") or {}
    inner = graph.meta.get("padding") or {}
    padding = FramePadding(
        int(req.get("minimum", 0)), int(req.get("multiple_of", 1)), bool(req.get("square")),
        int(inner.get("multiple_of", 1)), inner.get("mode", "reflect"),
    )
    if padding.inner_mode not in ("reflect", "replicate"):
        raise ValueError(f"the model pads its input with mode '{padding.inner_mode}'; fastsr "
                         "pads frames by 'reflect' or 'replicate' only")
    return None if padding == FramePadding() else padding


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _outer_size(padding: FramePadding, height: int, width: int) -> tuple[int, int]:
    """spandrel's SizeRequirements.get_padding, as the padded size."""
    h = _round_up(max(padding.minimum, height), padding.multiple_of)
    w = _round_up(max(padding.minimum, width), padding.multiple_of)
    return (max(h, w),) * 2 if padding.square else (h, w)


def _reflect_indices(length: int, target: int) -> np.ndarray:
    """Source index of each of `target` positions: reflect up to length - 1 pixels, then
    repeat the last reflected one (index 0)."""
    extra = np.arange(1, target - length + 1)
    return np.concatenate([np.arange(length), np.maximum(length - 1 - extra, 0)])


def _inner_indices(length: int, multiple: int, mode: str) -> np.ndarray:
    target = _round_up(length, multiple)
    if mode == "replicate":
        return np.minimum(np.arange(target), length - 1)
    if target - length >= length:
        raise ValueError(f"a side of {length} pixels is too small for the model's own "
                         f"reflect padding to a multiple of {multiple}")
    return _reflect_indices(length, target)


def _take(pixels, indices: np.ndarray, axis: int):
    if is_torch_tensor(pixels):
        import torch

        return pixels.index_select(axis, torch.as_tensor(indices, device=pixels.device))
    return np.take(pixels, indices, axis=axis)
