"""The int8 layers of the CPU ProgramBuilder: u8 tensors, quantize steps and int8 convs.

Which tensors are u8 follows cpu_narrow.NarrowTensors; a u8 buffer's border is filled
with the tensor's zero point, so a padded tap reads real zero.
"""

from __future__ import annotations

import numpy as np

from fastsr.backends.cpu_narrow import NarrowSteps, NarrowTensors, narrow_kernels_take
from fastsr.graph.ir import Graph
from fastsr.quantize import quantize_weight
from fastsr.winograd_int8 import TRANSFORM, check_tap_scales, quantize_winograd_weight

BYTE_SLACK = 64  # csrc Program::add_byte_buffer: the 4-channel reads past the last pixel
# Families whose int8 Winograd beat their direct int8, Xeon SPR, 640x360, 2 threads, CPU
# time, quality models: AVX-512 VNNI 1.17x, AVX-VNNI 1.35-1.45x, AVX2 1.6x (1.0-1.3x,
# 1.2-1.3x, 1.5-1.7x on one 64 -> 64 conv). AMX tiles (0.7x) stay direct; portable and NEON are
# unmeasured and stay direct too (docs/BENCHMARKS.md, int8 Winograd).
WINOGRAD_FAMILIES = ("avx512vnni", "avxvnni", "avx2")


def int8_meta(graph: Graph) -> dict:
    meta = graph.meta.get("int8")
    if not meta:
        name = graph.meta.get("name", "this model")
        raise ValueError(
            f"{name} has no int8 calibration; make one with "
            "`fastsr quantize MODEL --calibration DIR -o OUT` (fastsr.quantize.quantize_model)"
        )
    return meta


class Int8Tensors(NarrowTensors):
    """The u8 tensors, with the scale and zero point of each."""

    def __init__(self, graph: Graph, plan, convs: dict):
        meta = int8_meta(graph)
        self.params = {name: (float(s), int(z)) for name, (s, z) in meta["activations"].items()}
        producers = graph.producers()
        # even where a calibration lists it
        layers = [name for name in meta["layers"] if narrow_kernels_take(producers[name])]
        for name in layers:
            x = producers[name].inputs[0]
            if x not in self.params:
                raise ValueError(f"int8 calibration lacks the scale of {x!r}, read by {name!r}")
        super().__init__(graph, plan, convs, layers, 1, BYTE_SLACK)
        self.tap_scales = winograd_tap_scales(meta)


def winograd_tap_scales(meta: dict) -> dict:
    """tensor -> its 16 Winograd tap scales, from a calibration's "winograd" entry (none in
    one made before int8 Winograd: its convs run direct)."""
    winograd = meta.get("winograd")
    if winograd is None:
        return {}
    if not isinstance(winograd, dict) or winograd.get("transform") != TRANSFORM:
        got = winograd.get("transform") if isinstance(winograd, dict) else winograd
        raise ValueError(f"int8 calibration: Winograd taps of {got!r}, expected {TRANSFORM}")
    taps = winograd.get("taps")
    if not isinstance(taps, dict):
        raise ValueError("int8 calibration: Winograd taps must map tensors to scales")
    return {tensor: check_tap_scales(tensor, scales) for tensor, scales in taps.items()}


class Int8Steps(NarrowSteps):
    """Adds the int8 steps to a ProgramBuilder's Program."""

    def __init__(self, builder):
        self.builder, self.program = builder, builder.program
        self.tensors = Int8Tensors(builder.graph, builder.plan, builder.convs)
        self.views = {}
        for x, (n, h, w, c) in self.tensors.shape.items():
            _, zero = self.tensors.params[x]
            buffer = self.program.add_byte_buffer(n, h, w, c, self.tensors.border[x], fill=zero)
            self.views[x] = self.program.byte_view(buffer, 0, c)

    def convert(self, tensor: str) -> None:
        scale, zero = self.tensors.params[tensor]
        self.program.quantize(self.builder.view(tensor), scale, zero, self.views[tensor])

    def runs_winograd(self, node) -> bool:
        """int8 Winograd where the calibration has the input's tap scales, the conv its
        shape and the active family a win from it (WINOGRAD_FAMILIES)."""
        spec = self.builder.convs[node.output]
        cout, cin, kh, kw = spec.weight.shape
        return (
            node.inputs[0] in self.tensors.tap_scales
            and self.builder._C.int8_isa() in WINOGRAD_FAMILIES
            and self.builder._C.int8_winograd_fits(
                cin, cout, kh, kw, spec.stride, spec.dilation, spec.pad_top, spec.pad_left,
                spec.shuffle,
            )
        )  # fmt: skip

    def add_conv(self, node, out, conv_args: dict) -> None:
        spec = self.builder.convs[node.output]
        x_scale, x_zero = self.tensors.params[node.inputs[0]]
        fp32, narrow = self.targets(node)
        target = dict(out=out) if fp32 else {}
        if narrow:
            scale, zero = self.tensors.params[node.output]
            target.update(out_q=self.views[node.output], out_scale=scale, out_zero=zero)
        if self.runs_winograd(node):
            weight, w_scale = quantize_winograd_weight(spec.weight)
            epilogue = {k: conv_args[k] for k in ("activation", "slope", "alpha", "skip")}
            self.program.conv2d_int8_winograd(
                self.views[node.inputs[0]],
                weight,
                w_scale,
                np.asarray(self.tensors.tap_scales[node.inputs[0]], np.float32),
                spec.bias,
                x_scale=x_scale,
                x_zero=x_zero,
                **epilogue,
                **target,
            )
            return
        weight, w_scale = quantize_weight(spec.weight)
        self.program.conv2d_int8(
            self.views[node.inputs[0]],
            weight,
            w_scale,
            spec.bias,
            x_scale=x_scale,
            x_zero=x_zero,
            **conv_args,
            **target,
        )
