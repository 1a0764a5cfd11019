"""Tensors of the CPU ProgramBuilder's narrow layers (int8 or bf16 convs).

A tensor a narrow conv reads gets a narrow buffer with the border its widest reader
needs. A narrow conv producing such a tensor writes its narrow copy itself, in the same
pass as the fp32 one when something else reads the tensor too (a residual block's output
is the next block's skip as well as the next conv's input); only narrow convs reading it:
the narrow copy alone. A tensor another step produces is computed in fp32 as usual and
converted by one extra step. Skips, the graph output and everything else stay fp32.
"""

from __future__ import annotations

from fastsr.graph.ir import Graph


def narrow_kernels_take(node) -> bool:
    """Whether the int8 and bf16 conv kernels run `node`'s epilogue: all but a gated one
    (SPAN), which only the fp32 kernels have; such a conv stays fp32."""
    return node.epilogue("gate") is None


class NarrowTensors:
    """Which tensors live in narrow buffers of `element_bytes` (+ `slack` bytes each)."""

    def __init__(self, graph: Graph, plan, convs: dict, layers, element_bytes: int, slack: int):
        self.layers = set(layers)
        self.element_bytes, self.slack = element_bytes, slack
        producers, consumers = graph.producers(), graph.consumers()
        self.border: dict[str, int] = {}
        for name in self.layers:
            x = producers[name].inputs[0]
            spec = convs[name]
            _, h, w = plan.shapes[x]
            _, oh, ow = plan.shapes[name]
            need = spec.border_needed(h, w, oh // spec.shuffle, ow // spec.shuffle)
            self.border[x] = max(self.border.get(x, 0), need)
        self.narrow_only = {
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
            total += n * (h + 2 * pad) * (w + 2 * pad) * c * self.element_bytes + self.slack
        return total


class NarrowSteps:
    """The narrow layers' steps in a ProgramBuilder's Program. A subclass sets `tensors`
    and `views` (tensor -> narrow view) and adds `convert` and `add_conv`."""

    tensors: NarrowTensors
    views: dict

    def runs(self, node) -> bool:
        return node.output in self.tensors.layers

    def convert_if_read(self, tensor: str) -> None:
        """After `tensor` is computed in fp32 by a step other than a narrow conv: its narrow
        copy, if a narrow conv reads it."""
        if tensor in self.views and tensor not in self.tensors.layers:
            self.convert(tensor)

    def targets(self, node) -> tuple[bool, bool]:
        """(fp32, narrow): the outputs the narrow conv computing `node` writes."""
        name = node.output
        return name not in self.tensors.narrow_only, name in self.views

    def convert(self, tensor: str) -> None:
        raise NotImplementedError

    def add_conv(self, node, out, conv_args: dict) -> None:
        """The narrow conv computing `node` into fp32 `out`, its narrow view or both
        (`targets`); conv_args: stride, padding, dilation and epilogue as Program.conv2d
        takes them."""
        raise NotImplementedError
