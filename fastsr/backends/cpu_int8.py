"""The int8 half of the CPU ProgramBuilder: u8 tensors, quantize steps and int8 convs.

Tensors an int8 conv reads get a u8 buffer (border filled with their zero point, so a
padded tap reads real zero). A tensor that only int8 convs read is written as u8 by its
producer when that is an int8 conv; otherwise it is computed in fp32 as usual and then
quantised by one extra step. Skips, the graph output and everything else stay fp32.
"""

from __future__ import annotations

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


class Int8Tensors:
    """Which tensors live in u8, with what scale, zero point and border."""

    def __init__(self, graph: Graph, plan, convs: dict):
        meta = int8_meta(graph)
        self.layers = set(meta["layers"])
        self.params = {name: (float(s), int(z)) for name, (s, z) in meta["activations"].items()}
        producers, consumers = graph.producers(), graph.consumers()
        self.border: dict[str, int] = {}
        for name in self.layers:
            node = producers[name]
            x = node.inputs[0]
            if x not in self.params:
                raise ValueError(f"int8 calibration lacks the scale of {x!r}, read by {name!r}")
            spec = convs[name]
            _, h, w = plan.shapes[x]
            _, oh, ow = plan.shapes[name]
            need = spec.border_needed(h, w, oh // spec.shuffle, ow // spec.shuffle)
            self.border[x] = max(self.border.get(x, 0), need)
        # u8 only: produced by an int8 conv, read only as the input of int8 convs.
        self.u8_only = {
            x
            for x in self.border
            if x in self.layers
            and x != graph.output
            and all(
                c.output in self.layers and c.inputs[0] == x and x not in c.inputs[1:]
                for c in consumers.get(x, [])
            )
        }
        self.shape = {x: (plan.batch, *plan.shapes[x][1:], plan.shapes[x][0]) for x in self.border}

    def nbytes(self) -> int:
        total = 0
        for x, (n, h, w, c) in self.shape.items():
            pad = self.border[x]
            total += n * (h + 2 * pad) * (w + 2 * pad) * c + BYTE_SLACK
        return total


class Int8Steps:
    """Adds the int8 steps to a ProgramBuilder's Program."""

    def __init__(self, builder):
        self.builder, self.program = builder, builder.program
        self.tensors = Int8Tensors(builder.graph, builder.plan, builder.convs)
        self.views = {}
        for x, (n, h, w, c) in self.tensors.shape.items():
            _, zero = self.tensors.params[x]
            buffer = self.program.add_byte_buffer(n, h, w, c, self.tensors.border[x], fill=zero)
            self.views[x] = self.program.byte_view(buffer, 0, c)

    def runs(self, node) -> bool:
        return node.output in self.tensors.layers

    def quantize_if_read(self, tensor: str) -> None:
        """After `tensor` is computed in fp32: its u8 copy, if an int8 conv reads it."""
        if tensor in self.views and tensor not in self.tensors.u8_only:
            scale, zero = self.tensors.params[tensor]
            self.program.quantize(self.builder.view(tensor), scale, zero, self.views[tensor])

    def add_conv(self, node, out, skip, activation: str, alpha: float) -> None:
        spec = self.builder.convs[node.output]
        weight, w_scale = quantize_weight(spec.weight)
        x_scale, x_zero = self.tensors.params[node.inputs[0]]
        target = {}
        if node.output in self.tensors.u8_only:
            scale, zero = self.tensors.params[node.output]
            target = dict(out_q=self.views[node.output], out_scale=scale, out_zero=zero)
        else:
            target = dict(out=out)
        self.program.conv2d_int8(
            self.views[node.inputs[0]],
            weight,
            w_scale,
            spec.bias,
            x_scale=x_scale,
            x_zero=x_zero,
            stride=spec.stride,
            pad_top=spec.pad_top,
            pad_left=spec.pad_left,
            dilation=spec.dilation,
            activation=activation,
            slope=spec.slope,
            alpha=alpha,
            shuffle=spec.shuffle,
            skip=skip,
            **target,
        )
