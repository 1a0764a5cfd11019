"""The bf16 layers of the CPU ProgramBuilder: bf16 tensors, fp32 -> bf16 steps, bf16 convs.

bf16 needs no calibration: a bf16 tensor is its fp32 value rounded to nearest, and a bf16
buffer's border is plain zero. Which tensors are bf16 follows cpu_narrow.NarrowTensors.
"""

from __future__ import annotations

from fastsr.backends.cpu_narrow import NarrowSteps, NarrowTensors, narrow_kernels_take
from fastsr.graph.ir import Graph


def bf16_layers(graph: Graph, convs: dict) -> list[str]:
    """Every conv bf16 runs faster than fp32 here, except those reading the image (measured
    in docs/DESIGN.md): bf16 holds 8 significant bits, fewer than an 8-bit image's steps in
    [0.5, 1). AVX512_BF16 and NEON bf16 direct convs beat fp32 direct but not fp32 Winograd;
    AMX tiles beat both (docs/BENCHMARKS.md, AMX bf16), so on AMX every conv it takes.
    Nor a conv whose epilogue the bf16 kernels lack (`narrow_kernels_take`)."""
    producers = graph.producers()
    return [
        name
        for name, spec in convs.items()
        if producers[name].inputs[0] != graph.input
        and narrow_kernels_take(producers[name])
        and (not spec.runs_winograd() or spec.bf16_family() == "amx")
    ]


class Bf16Tensors(NarrowTensors):
    def __init__(self, graph: Graph, plan, convs: dict):
        super().__init__(graph, plan, convs, bf16_layers(graph, convs), 2, 0)


class Bf16Steps(NarrowSteps):
    """Adds the bf16 steps to a ProgramBuilder's Program."""

    def __init__(self, builder):
        self.builder, self.program = builder, builder.program
        self.tensors = Bf16Tensors(builder.graph, builder.plan, builder.convs)
        self.views = {}
        for x, (n, h, w, c) in self.tensors.shape.items():
            buffer = self.program.add_bf16_buffer(n, h, w, c, self.tensors.border[x])
            self.views[x] = self.program.bf16_view(buffer, 0, c)

    def convert(self, tensor: str) -> None:
        self.program.to_bf16(self.builder.view(tensor), self.views[tensor])

    def add_conv(self, node, out, conv_args: dict) -> None:
        spec = self.builder.convs[node.output]
        fp32, narrow = self.targets(node)
        target = dict(out=out) if fp32 else {}
        if narrow:
            target["out_bf16"] = self.views[node.output]
        x = self.views[node.inputs[0]]
        self.program.conv2d_bf16(x, spec.weight, spec.bias, **conv_args, **target)
