"""Triton backend: each IR node becomes one launch of a kernel from `fastsr.kernels`.

Weights are packed once per plan (conv weights to K x Cout in the compute dtype, all
per-channel vectors to float32). Activations live in the plan's buffer slots, stored in
the compute dtype, so fp16/bf16 also halve the memory traffic between layers; every
kernel computes in float32. The graph output is a fresh float32 tensor per call.

On a machine without CUDA the kernels run in Triton's interpreter on CPU tensors when
TRITON_INTERPRET=1 is set (the tests do this); that is for proving correctness only.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from fastsr.backends.torch_image import TorchCompiled, image_stage_bytes
from fastsr.graph.ir import ACTIVATIONS, CONV_OPS, KERNEL_OPS, Graph, Node

_PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TritonBackend:
    name = "triton"
    array = "torch"

    def __init__(self, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
        self.dtype = dtype

    def availability(self) -> str | None:
        try:
            import triton  # noqa: F401
        except ImportError as error:
            return f"triton is not installed ({error})"
        if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
            return None
        return "no CUDA device (set TRITON_INTERPRET=1 to run Triton kernels in the " \
               "interpreter on CPU)"

    @property
    def device(self) -> str:
        return "cuda" if torch.cuda.is_available() else "cpu"  # cpu: the interpreter

    def precisions(self) -> tuple[str, ...]:
        return tuple(_PRECISION_DTYPES)

    def faster_precisions(self, graph) -> tuple[str, ...]:
        return ("fp16", "bf16")  # tensor cores: half the bytes, several times the FLOPs

    def plan_bytes(self, graph: Graph, plan, precision: str = "fp32", threads=None) -> int:
        itemsize = _PRECISION_DTYPES[precision].itemsize
        slots = itemsize * sum(plan.slot_elems)
        return slots + 4 * plan.elems(graph.output) + image_stage_bytes(graph, plan)

    def unsupported(self, graph: Graph) -> list[str]:
        problems = []
        for node in graph.nodes:
            where = node.name or node.output
            if node.op not in KERNEL_OPS:
                problems.append(f"{where}: op '{node.op}' has no Triton kernel")
            elif node.op in CONV_OPS and node.attrs["groups"] != 1:
                problems.append(f"{where}: grouped convolution (groups={node.attrs['groups']})")
            elif node.op == "conv_transpose2d" and tuple(node.attrs["dilation"]) != (1, 1):
                problems.append(f"{where}: dilated transposed convolution")
        return problems

    def compile(self, graph: Graph, plan, precision: str | None = None, threads=None):
        dtype = self.dtype if precision is None else _PRECISION_DTYPES[precision]
        largest = max(c * h * w for c, h, w in plan.shapes.values())
        if largest >= 2**31:
            raise ValueError(
                f"a {plan.width}x{plan.height} frame makes a {largest}-element tensor; the "
                "Triton kernels address one image with 32-bit offsets (< 2^31 elements): "
                "upscale it in tiles (fastsr.upscale(..., tile=...) or max_memory)"
            )
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        slots = [torch.empty(n, device=device, dtype=dtype) for n in plan.slot_elems]
        steps = [_compile_node(graph, node, plan, device, dtype) for node in graph.nodes]

        def tensor_view(name: str) -> torch.Tensor:
            c, h, w = plan.shapes[name]
            return slots[plan.slot_of[name]][: plan.batch * h * w * c].view(
                plan.batch, h, w, c)

        views = {name: tensor_view(name) for name in plan.slot_of}
        out_c, out_h, out_w = plan.shapes[graph.output]

        @torch.no_grad()
        def run(x: torch.Tensor) -> torch.Tensor:
            out = torch.empty(plan.batch, out_h, out_w, out_c, device=device)
            env = {**views, graph.input: x.to(device), graph.output: out}
            for node, step in zip(graph.nodes, steps, strict=False):
                step([env[name] for name in node.inputs], env[node.output])
            return out.to(x.device)

        return TorchCompiled(run, graph, device, self.plan_bytes(graph, plan, precision or "fp32"))


def _channel_vector(graph: Graph, name: str, channels: int, device) -> torch.Tensor:
    """A float32 per-channel parameter; a single value is broadcast to every channel."""
    value = np.broadcast_to(graph.params[name].reshape(-1), (channels,))
    return torch.tensor(value, dtype=torch.float32, device=device)


def _conv_epilogue(graph: Graph, node: Node, channels: int, device):
    from fastsr.kernels.epilogue import Epilogue

    activation = node.epilogue("activation") or "none"
    param = node.epilogue("activation_param")
    return Epilogue(
        activation=activation,
        slope=_channel_vector(graph, param, channels, device) if activation == "prelu" else None,
        alpha=param if activation == "leaky_relu" else 0.0,
        shuffle=node.epilogue("pixel_shuffle"),
        skip=(node.epilogue("skip_resize") or "same") if len(node.inputs) > 1 else "none",
        gate=node.epilogue("gate") or "none",
        gate_scale=node.epilogue("gate_scale"),
        gate_shift=node.epilogue("gate_shift"),
    )


def _compile_node(graph: Graph, node: Node, plan, device, dtype):
    """A function (inputs, output) -> None that runs `node` with parameters packed now."""
    from fastsr.kernels import elementwise, pool, resize
    from fastsr.kernels.conv2d import conv2d, pack_conv2d
    from fastsr.kernels.conv_transpose2d import conv_transpose2d, pack_conv_transpose2d

    a, op = node.attrs, node.op

    def param(name):
        return None if name is None else torch.from_numpy(graph.params[name]).to(device)

    if op == "conv2d":
        layer = pack_conv2d(param(a["weight"]), param(a["bias"]), a["stride"][0],
                            a["padding"], a["dilation"], dtype)
        epilogue = _conv_epilogue(graph, node, layer.out_channels, device)
        return lambda ins, out: conv2d(layer, ins[0], out, epilogue, *ins[1:])
    if op == "conv_transpose2d":
        layer = pack_conv_transpose2d(param(a["weight"]), param(a["bias"]), a["stride"][0],
                                      a["padding"], dtype)
        epilogue = _conv_epilogue(graph, node, layer.out_channels, device)
        return lambda ins, out: conv_transpose2d(layer, ins[0], out, epilogue, *ins[1:])
    channels = plan.shapes[node.inputs[0]][0]
    if op == "add":
        return lambda ins, out: elementwise.binary("add", ins[0], ins[1], out)
    if op == "mul":
        if plan.shapes[node.inputs[0]] == plan.shapes[node.inputs[1]]:
            return lambda ins, out: elementwise.binary("mul", ins[0], ins[1], out)
        return lambda ins, out: pool.scale_channels(ins[0], ins[1], out)
    if op == "mul_add":
        return lambda ins, out: pool.scale_channels(ins[0], ins[1], out, ins[2])
    if op == "affine":
        scale = _channel_vector(graph, a["scale"], channels, device)
        shift = _channel_vector(graph, a["shift"], channels, device)
        return lambda ins, out: elementwise.affine_activation(ins[0], out, scale, shift)
    if op in ACTIVATIONS:
        slope = _channel_vector(graph, a["slope"], channels, device) if op == "prelu" else None
        low = a.get("min") if a.get("min") is not None else -float("inf")
        high = a.get("max") if a.get("max") is not None else float("inf")
        return lambda ins, out: elementwise.affine_activation(
            ins[0], out, activation=op, slope=slope, alpha=a.get("alpha", 0.0), low=low,
            high=high)
    if op == "concat":
        return lambda ins, out: elementwise.concat(ins, out)
    if op == "global_avg_pool":
        return lambda ins, out: pool.global_avg_pool(ins[0], out)
    if op == "pixel_shuffle":
        return lambda ins, out: elementwise.pixel_shuffle(ins[0], out, a["factor"])
    if op == "pixel_unshuffle":
        return lambda ins, out: elementwise.pixel_unshuffle(ins[0], out, a["factor"])
    if op == "resize":
        return lambda ins, out: resize.resize(ins[0], out, a["mode"], int(a["factor"]))
    raise AssertionError(f"{op} passed unsupported() but has no kernel")


BACKEND = TritonBackend()
