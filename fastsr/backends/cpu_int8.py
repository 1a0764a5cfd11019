"""The int8 layers of the CPU ProgramBuilder: u8 tensors, quantize steps and int8 convs.

Which tensors are u8 follows cpu_narrow.NarrowTensors; a u8 buffer's border is filled
with the tensor's zero point, so a padded tap reads real zero.
"""

from __future__ import annotations

from fastsr.backends.cpu_narrow import NarrowSteps, NarrowTensors, narrow_kernels_take
from fastsr.graph.ir import Graph
from fastsr.quantize import quantize_weight

BYTE_SLACK = 64  # csrc Program::add_byte_buffer: the 4-channel reads past the last pixel


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

    def add_conv(self, node, out, conv_args: dict) -> None:
        spec = self.builder.convs[node.output]
        weight, w_scale = quantize_weight(spec.weight)
        x_scale, x_zero = self.tensors.params[node.inputs[0]]
        fp32, narrow = self.targets(node)
        target = dict(out=out) if fp32 else {}
        if narrow:
            scale, zero = self.tensors.params[node.output]
            target.update(out_q=self.views[node.output], out_scale=scale, out_zero=zero)
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
