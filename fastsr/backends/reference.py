"""Plain torch ops, node by node, no fusion: the yardstick every backend is tested against."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastsr.backends.torch_image import TorchCompiled, image_stage_bytes
from fastsr.graph.ir import Graph, Node


def resize(x: torch.Tensor, mode: str, factor: int) -> torch.Tensor:
    align = None if mode == "nearest" else False
    return F.interpolate(x, scale_factor=factor, mode=mode, align_corners=align)


def activation(graph: Graph, x: torch.Tensor, op: str | None, param) -> torch.Tensor:
    if op is None:
        return x
    if op == "relu":
        return torch.relu(x)
    if op == "prelu":
        return F.prelu(x, torch.from_numpy(graph.params[param]).to(x))
    if op == "leaky_relu":
        return F.leaky_relu(x, param)
    if op == "tanh":
        return torch.tanh(x)
    if op == "sigmoid":
        return torch.sigmoid(x)
    if op == "silu":
        return F.silu(x)
    raise AssertionError(f"unknown activation {op}")


def _channel_vector(graph: Graph, name: str, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(graph.params[name]).to(like).reshape(1, -1, 1, 1)


def run_node(graph: Graph, node: Node, ins: list[torch.Tensor]) -> torch.Tensor:
    a, x = node.attrs, ins[0]

    def param(key):
        name = a.get(key)
        return None if name is None else torch.from_numpy(graph.params[name]).to(x)

    if node.op in ("conv2d", "conv_transpose2d"):
        if node.op == "conv2d":
            y = F.conv2d(x, param("weight"), param("bias"), a["stride"], a["padding"],
                         a["dilation"], a["groups"])
        else:
            y = F.conv_transpose2d(x, param("weight"), param("bias"), a["stride"], a["padding"],
                                   a["output_padding"], a["groups"], a["dilation"])
        y = activation(graph, y, node.epilogue("activation"), node.epilogue("activation_param"))
        if node.epilogue("pixel_shuffle") != 1:
            y = F.pixel_shuffle(y, node.epilogue("pixel_shuffle"))
        if len(ins) > 1:
            skip = ins[1]
            mode = node.epilogue("skip_resize")
            if mode is not None:
                skip = resize(skip, mode, y.shape[2] // skip.shape[2])
            gate = node.epilogue("gate")
            if gate is None:
                return y + skip
            gated = activation(graph, y, gate, None)
            return (y + skip) * (node.epilogue("gate_scale") * gated + node.epilogue("gate_shift"))
        return y
    if node.op == "batch_norm":
        return F.batch_norm(x, param("mean"), param("var"), param("weight"), param("bias"),
                            False, 0.0, a["eps"])
    if node.op == "affine":
        return x * _channel_vector(graph, a["scale"], x) + _channel_vector(graph, a["shift"], x)
    if node.op == "add":
        return x + ins[1]
    if node.op == "mul":
        return x * ins[1]
    if node.op == "mul_add":
        return x * ins[1] + ins[2]
    if node.op == "concat":
        return torch.cat(ins, dim=1)
    if node.op == "global_avg_pool":
        return x.mean(dim=(2, 3), keepdim=True)
    if node.op == "pixel_shuffle":
        return F.pixel_shuffle(x, a["factor"])
    if node.op == "pixel_unshuffle":
        return F.pixel_unshuffle(x, a["factor"])
    if node.op == "resize":
        return resize(x, a["mode"], a["factor"])
    if node.op == "torch_module":
        # a copy in (RCAN scales its input in place), a copy out (an inference-mode tensor)
        return a["module"].call(x.clone()).clone()
    if node.op == "clamp":
        return torch.clamp(x, a["min"], a["max"])
    return activation(graph, x, node.op, a.get("slope", a.get("alpha")))


def run_graph(graph: Graph, x_nchw: torch.Tensor) -> torch.Tensor:
    """Run the graph on an N x C x H x W tensor; returns N x C' x H' x W'."""
    env = {graph.input: x_nchw}
    last_use = {name: i for i, node in enumerate(graph.nodes) for name in node.inputs}
    for i, node in enumerate(graph.nodes):
        env[node.output] = run_node(graph, node, [env[name] for name in node.inputs])
        for name in node.inputs:  # free early so big frames fit in memory
            if last_use[name] == i and name != graph.output:
                env.pop(name, None)
    return env[graph.output]


class ReferenceBackend:
    name = "reference"
    device = "cpu"
    array = "torch"

    def availability(self) -> str | None:
        return None

    def precisions(self) -> tuple[str, ...]:
        return ("fp32",)

    def faster_precisions(self, graph: Graph) -> tuple[str, ...]:
        return ()

    def unsupported(self, graph: Graph) -> list[str]:
        return []

    def plan_bytes(self, graph: Graph, plan, precision: str = "fp32", threads=None) -> int:
        # torch frees each tensor after its last use, so the live set is the planned
        # slots; the permuted input and output copies come on top, and what a module run
        # whole in torch holds inside (measured: fastsr.torch_memory).
        in_elems, out_elems = plan.elems(graph.input), plan.elems(graph.output)
        inside = sum(node.attrs["module"].peak_bytes(plan.batch, *plan.shapes[node.inputs[0]][1:])
                     for node in graph.nodes if node.op == "torch_module")
        return (plan.peak_bytes + 8 * (in_elems + out_elems) + image_stage_bytes(graph, plan)
                + inside)

    def compile(self, graph: Graph, plan, precision: str = "fp32", threads: int | None = None):
        if threads is not None:
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool

        @torch.no_grad()
        def run(x: torch.Tensor) -> torch.Tensor:
            y = run_graph(graph, x.permute(0, 3, 1, 2))
            return y.permute(0, 2, 3, 1).contiguous()

        return TorchCompiled(run, graph, torch.device("cpu"),
                             self.plan_bytes(graph, plan, precision))


BACKEND = ReferenceBackend()
