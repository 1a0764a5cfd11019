"""Run a big image through an engine in tiles whose result equals the untiled one.

Each tile is run with a halo of LR pixels around it as wide as the network's receptive
field radius, and only the tile's core is kept. An output pixel in the core therefore
sees exactly the input it would see in the whole image: no seams, by construction
rather than by blending. Every tile has the same size (the last tile along an axis is
moved back inside the image), so a stream of tiles uses one cached engine plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from fastsr.graph.ir import CONV_OPS, GLOBAL, OPS, RESIZE_MODES, Graph, layout_reach

GLOBAL_FIELD = None  # receptive_radius of a graph that pools over the whole image


def _conv_reach(graph: Graph, node) -> Fraction:
    """How far an output pixel of the conv reads, in pixels of the conv's input tensor."""
    a, kernel = node.attrs, graph.params[node.attrs["weight"]].shape[2:]
    if node.op == "conv_transpose2d":
        # output pixel o reads input i with i * stride = o + padding - tap, tap in
        # [0, dilation * (kernel - 1)]: up to (that - padding) / stride to one side and
        # padding / stride to the other, plus one for the rounding down of o / stride
        span = max(
            max(a["dilation"][i] * (kernel[i] - 1) - a["padding"][i], a["padding"][i])
            for i in range(2)
        )
        return Fraction(span, a["stride"][0]) + 1
    # the stride-1 half-width; it bounds strided convs too (kernel = stride + 2 * padding)
    return max(Fraction(a["dilation"][i] * (kernel[i] - 1), 2) for i in range(2))


def receptive_radius(graph: Graph) -> int | None:
    """How many LR pixels around a pixel can change its output (rounded up), or None
    when the receptive field is the whole image (global pooling)."""
    shapes = graph.shapes()
    reach: dict[str, Fraction | None] = {graph.input: Fraction(0)}

    def grown(tensor: str, pixels) -> Fraction | None:
        """Reach of `tensor` plus `pixels` of its own resolution, in input pixels."""
        base = reach[tensor]
        if base is GLOBAL_FIELD or shapes[tensor].scale == GLOBAL:
            return GLOBAL_FIELD
        return base + Fraction(pixels) / shapes[tensor].scale

    for node in graph.nodes:
        kind = OPS[node.op].kind
        if kind == "reduce":
            reach[node.output] = GLOBAL_FIELD
            continue
        if kind == "opaque":  # a module run in torch: its reach is measured (torch_reach)
            reach[node.output] = grown(node.inputs[0], node.attrs["module"].reach())
            continue
        if node.op in CONV_OPS:
            parts = [grown(node.inputs[0], _conv_reach(graph, node))]
            if len(node.inputs) > 1:
                mode = node.attrs.get("skip_resize")
                parts.append(grown(node.inputs[1], RESIZE_MODES[mode].reach if mode else 0))
        elif kind == "resize":
            parts = [grown(node.inputs[0], RESIZE_MODES[node.attrs["mode"]].reach)]
        elif kind == "layout":
            parts = [grown(node.inputs[0], layout_reach(node))]
        else:  # pointwise, add/mul/concat: no spatial reach of their own
            parts = [reach[name] for name in node.inputs]
        if any(part is GLOBAL_FIELD for part in parts):
            reach[node.output] = GLOBAL_FIELD
        else:
            reach[node.output] = max(parts)
    radius = reach[graph.output]
    return GLOBAL_FIELD if radius is GLOBAL_FIELD else math.ceil(radius)


def alignment(graph: Graph) -> int:
    """Tile offsets and sizes must be multiples of this many LR pixels so that every
    downscaled tensor (after a strided conv) is cut on its own pixel grid, and a module
    run in torch sees its attention windows where the whole frame puts them."""
    step = 1
    for node in graph.nodes:
        if OPS[node.op].kind == "opaque":
            step = math.lcm(step, node.attrs["module"].align)
    for shape in graph.shapes().values():
        if shape.scale != GLOBAL:
            step = math.lcm(step, Fraction(shape.scale).denominator)
    return step


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def axis_windows(
    length: int, window: int, halo: int, align: int = 1
) -> list[tuple[int, int, int]]:
    """(start, keep_from, keep_to) per window along one axis, all windows `window` long
    but the last, which may be up to `align` - 1 longer.

    A window keeps its core: it drops `halo` pixels at each side that is not an image
    edge. Cores cover the axis; the last window is moved back to end at the edge, so its
    core may overlap the previous one (both compute the same values there). Starts are
    multiples of `align` (a window-attention model partitions its input from its origin),
    so the last window starts at one and grows to the edge.
    """
    if window >= length:
        return [(0, 0, length)]
    step = window - 2 * halo
    windows = []
    start = 0
    while True:
        start = min(start, (length - window) // align * align)
        last = start + window >= length - align + 1
        keep_from = start + halo if start > 0 else 0
        windows.append((start, keep_from, length if last else start + window - halo))
        if last:
            return windows
        start += step


@dataclass(frozen=True)
class Window:
    """One tile: the LR window [y0, y0 + h) x [x0, x0 + w) is run, and its output from
    (top, left) on fills the HR region [out_y0, out_y1) x [out_x0, out_x1)."""

    y0: int
    x0: int
    h: int
    w: int
    top: int
    left: int
    out_y0: int
    out_y1: int
    out_x0: int
    out_x1: int


class TilePlan:
    """How to cut frames of one size: window size per axis, halo and output scale."""

    def __init__(self, window_h: int, window_w: int, halo: int, scale: int, align: int = 1):
        self.window_h, self.window_w, self.halo, self.scale = window_h, window_w, halo, scale
        self.align = align

    def windows(self, height: int, width: int) -> list[Window]:
        """The windows whose kept cores tile a height x width frame, row by row."""
        s = self.scale
        rows = axis_windows(height, self.window_h, self.halo, self.align)
        cols = axis_windows(width, self.window_w, self.halo, self.align)

        def size(start: int, keep_to: int, window: int, length: int) -> int:
            return min(max(start + window, keep_to), length) - start

        return [
            Window(y0, x0, size(y0, keep_y1, self.window_h, height),
                   size(x0, keep_x1, self.window_w, width),
                   (keep_y0 - y0) * s, (keep_x0 - x0) * s,
                   keep_y0 * s, keep_y1 * s, keep_x0 * s, keep_x1 * s)
            for y0, keep_y0, keep_y1 in rows
            for x0, keep_x0, keep_x1 in cols
        ]  # fmt: skip


def plan_tiles(
    run_bytes: Callable[[int, int], int],
    height: int,
    width: int,
    halo: int | None,
    align: int,
    scale: int,
    tile: int | None,
    max_memory: int,
) -> TilePlan | None:
    """The tiling for a height x width frame, or None to run it whole.

    `run_bytes(h, w)` is the memory a run on an h x w input takes. `tile` forces a core
    tile size (LR pixels); otherwise the largest square core that fits `max_memory` is
    used, and only when the whole frame does not fit. `halo` None (a global receptive
    field) means tiling would change the result, so the frame runs whole.
    """
    if halo is None:
        return None
    halo = _round_up(halo, align)
    if tile is None:
        if run_bytes(height, width) <= max_memory:
            return None
        tile = _largest_fitting_tile(run_bytes, height, width, halo, align, max_memory)
    window = _round_up(tile, align) + 2 * halo
    if window >= height and window >= width:
        return None
    return TilePlan(min(window, height), min(window, width), halo, scale, align)


def _largest_fitting_tile(run_bytes, height, width, halo, align, max_memory) -> int:
    """Binary search over core sizes (multiples of `align`); the smallest if none fit."""

    def fits(units: int) -> bool:
        window = units * align + 2 * halo
        return run_bytes(min(window, height), min(window, width)) <= max_memory

    low, high = 1, max(1, _round_up(max(height, width), align) // align)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low * align
