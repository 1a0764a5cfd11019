"""The inference graph: nodes over named tensors, parameters held apart.

Networks are fully convolutional, so a tensor's shape is its channel count and its
spatial size relative to the graph input (a Fraction, or GLOBAL for 1x1 pooled tensors);
concrete sizes are bound per input by `fastsr.engine.Engine.plan`.

Parameters are float32 numpy arrays in PyTorch layout (conv weight OIHW, transposed
conv weight IOHW). A node refers to them by name in its attrs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class OpSpec:
    """What an op is: the attrs it must carry, how many inputs it takes (None: any
    number), and its kind. Kinds: "conv" (a kernel window; may carry an epilogue),
    "pointwise" (element by element, may run in place), "activation" (pointwise, one
    input, fusable into a conv epilogue except clamp), "layout" (moves pixels between
    channels and space), "resize", "reduce" (global pooling), "concat"."""

    attrs: tuple[str, ...] = ()
    arity: int | None = 1
    kind: str = "pointwise"


@dataclass(frozen=True)
class ResizeMode:
    """reach: how far (pixels of its input) an output pixel reads: the kernel's
    half-width plus one for the rounding of the sample position."""

    reach: int


# The single table of ops: frontends, passes, tiling and backends take their lists here.
OPS: dict[str, OpSpec] = {
    "conv2d": OpSpec(("weight", "bias", "stride", "padding", "dilation", "groups"),
                     kind="conv"),
    "conv_transpose2d": OpSpec(
        ("weight", "bias", "stride", "padding", "output_padding", "dilation", "groups"),
        kind="conv",
    ),
    "batch_norm": OpSpec(("mean", "var", "weight", "bias", "eps")),
    "add": OpSpec(arity=2),
    "mul": OpSpec(arity=2),
    # a * s + skip with s pooled (GLOBAL): RCAN's channel attention and its residual add.
    "mul_add": OpSpec(arity=3),
    "affine": OpSpec(("scale", "shift")),
    "concat": OpSpec(arity=None, kind="concat"),
    "global_avg_pool": OpSpec(kind="reduce"),
    "pixel_shuffle": OpSpec(("factor",), kind="layout"),
    "pixel_unshuffle": OpSpec(("factor",), kind="layout"),
    "resize": OpSpec(("mode", "factor"), kind="resize"),
    "relu": OpSpec(kind="activation"),
    "prelu": OpSpec(("slope",), kind="activation"),
    "leaky_relu": OpSpec(("alpha",), kind="activation"),
    "tanh": OpSpec(kind="activation"),
    "sigmoid": OpSpec(kind="activation"),
    "silu": OpSpec(kind="activation"),
    "clamp": OpSpec(("min", "max"), kind="activation"),
    # A whole PyTorch module fastsr could not capture (`from_spandrel.TorchModule`): only
    # the reference backend runs it, its reach and memory are measured (fastsr.torch_reach,
    # fastsr.torch_memory), it is never serialised.
    "torch_module": OpSpec(("module", "scale", "out_channels"), kind="opaque"),
}

# Ops some backend runs with its own kernels (batch_norm only after folding into a conv).
KERNEL_OPS = tuple(op for op, spec in OPS.items() if spec.kind != "opaque" and op != "batch_norm")
CONV_OPS = tuple(op for op, spec in OPS.items() if spec.kind == "conv")
ACTIVATIONS = tuple(op for op, spec in OPS.items() if spec.kind == "activation")
EPILOGUE_ACTIVATIONS = tuple(op for op in ACTIVATIONS if op != "clamp")
# What a gated skip may apply to y: activations that take no parameter.
GATE_ACTIVATIONS = tuple(op for op in EPILOGUE_ACTIVATIONS if not OPS[op].attrs)
# Ops that read one element per element written (so may overwrite a dying input).
ELEMENTWISE_OPS = tuple(
    op for op, spec in OPS.items() if spec.kind in ("pointwise", "activation")
)

RESIZE_MODES: dict[str, ResizeMode] = {
    "bicubic": ResizeMode(reach=3),
    "bilinear": ResizeMode(reach=2),
    "nearest": ResizeMode(reach=1),
}
CUBIC_A = -0.75  # PyTorch's bicubic (Keys kernel), not the a = -0.5 of MATLAB's imresize

# The epilogue a conv2d / conv_transpose2d applies to its accumulator, in this order:
#   y = act(acc + bias) ; y = pixel_shuffle(y, factor) ; y = y + skip
# where `skip` is the node's second input (same shape as the final y) or, when
# `skip_resize` names a mode, that input resized with that mode to y's size (an integer
# factor: this is the global residual over a bicubic upscale of the network input).
# With a `gate` the last stage is instead y = (y + skip) * (gate_scale * gate(y) +
# gate_shift): SPAN's block tail, (y + x) * (sigmoid(y) - 0.5). A gated conv has a skip
# of its own size and no pixel shuffle.
EPILOGUE_DEFAULTS: dict[str, object] = {
    "activation": None,  # an EPILOGUE_ACTIVATIONS entry, or None
    "activation_param": None,  # prelu: slope param name; leaky_relu: alpha (float)
    "pixel_shuffle": 1,
    "skip_resize": None,  # None or a RESIZE_MODES entry
    "gate": None,  # None or a GATE_ACTIVATIONS entry
    "gate_scale": 1.0,
    "gate_shift": 0.0,
}

GLOBAL = "global"  # spatial size of a global_avg_pool output: 1x1 whatever the input


@dataclass
class Node:
    """One operation. `inputs` and `output` are tensor names; `name` says where it came from."""

    op: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)
    name: str = ""

    def epilogue(self, key: str):
        return self.attrs.get(key, EPILOGUE_DEFAULTS[key])


@dataclass(frozen=True)
class TensorShape:
    channels: int
    scale: Fraction | str  # spatial size relative to the graph input, or GLOBAL

    def bind(self, height: int, width: int) -> tuple[int, int, int]:
        """(channels, height, width) for a graph input of height x width."""
        if self.scale == GLOBAL:
            return self.channels, 1, 1
        h, w = height * self.scale, width * self.scale
        if h.denominator != 1 or w.denominator != 1:
            raise ValueError(
                f"input size {height}x{width} does not divide evenly through this network "
                f"(a tensor would be {float(h)}x{float(w)}); use a size that is a multiple of "
                f"{self.scale.denominator}"
            )
        return self.channels, int(h), int(w)


class GraphError(ValueError):
    """A graph that is malformed or uses something the engine does not support."""


@dataclass
class Graph:
    input: str
    input_channels: int
    output: str
    nodes: list[Node]
    params: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)  # scale, color mode, model name ...

    def copy(self) -> Graph:
        """A copy whose nodes can be rewritten; parameter arrays are shared, never mutated."""
        return Graph(
            self.input,
            self.input_channels,
            self.output,
            copy.deepcopy(self.nodes),
            dict(self.params),
            copy.deepcopy(self.meta),
        )

    def producers(self) -> dict[str, Node]:
        return {node.output: node for node in self.nodes}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                users.setdefault(name, []).append(node)
        return users

    def param(self, name: str | None) -> np.ndarray | None:
        return None if name is None else self.params[name]

    def shapes(self) -> dict[str, TensorShape]:
        """Shape of every tensor, derived from the input and the nodes in order."""
        shapes = {self.input: TensorShape(self.input_channels, Fraction(1))}
        for node in self.nodes:
            try:
                shapes[node.output] = _output_shape(self, node, [shapes[i] for i in node.inputs])
            except KeyError as missing:
                where = node.name or node.op
                raise GraphError(f"{where}: input {missing} is not defined") from None
        return shapes

    def validate(self) -> None:
        """Raise GraphError unless the graph is well formed and its shapes agree."""
        seen = {self.input}
        for node in self.nodes:
            where = node.name or node.op
            if node.op not in OPS:
                raise GraphError(f"{where}: unsupported op '{node.op}'")
            spec = OPS[node.op]
            missing = [a for a in spec.attrs if a not in node.attrs]
            if missing:
                raise GraphError(f"{where}: op '{node.op}' lacks attrs {missing}")
            if spec.arity is not None and len(node.inputs) != spec.arity and not (
                spec.kind == "conv" and len(node.inputs) == 2  # the epilogue's skip
            ):
                raise GraphError(
                    f"{where}: op '{node.op}' takes {spec.arity} inputs, got {len(node.inputs)}"
                )
            for attr in ("weight", "bias", "mean", "var", "scale", "shift", "slope"):
                ref = node.attrs.get(attr) if attr in spec.attrs else None
                if isinstance(ref, str) and ref not in self.params:
                    raise GraphError(f"{where}: parameter '{ref}' is missing")
            if node.output in seen:
                raise GraphError(f"{where}: tensor '{node.output}' is written twice")
            seen.add(node.output)
        if self.output not in seen:
            raise GraphError(f"graph output '{self.output}' is never produced")
        self.shapes()


def require_captured(graph: Graph, action: str) -> None:
    """ValueError unless every node is fastsr's own (no opaque PyTorch module)."""
    opaque = [node.name or node.op for node in graph.nodes if OPS[node.op].kind == "opaque"]
    if opaque:
        raise ValueError(
            f"cannot {action}: {', '.join(opaque)} runs as a PyTorch module (it could not be "
            f"captured: {graph.meta.get('fallback', 'unsupported ops')}); only captured "
            "graphs can be saved or exported. Load the original weight file instead"
        )


def layout_reach(node: Node) -> int:
    """How far (pixels of its input) an output pixel of a layout op reads beyond its own
    position: pixel_unshuffle gathers a factor x factor block, pixel_shuffle one pixel."""
    return node.attrs["factor"] - 1 if node.op == "pixel_unshuffle" else 0


def image_color(graph: Graph) -> str | None:
    """How the graph sees an image: "rgb" (3 channels in and out), "y" (BT.601 luma, 1 in
    and out), or None when its channels fit neither (meta["color"] may say which)."""
    out_channels = graph.shapes()[graph.output].channels
    color = graph.meta.get("color") or {3: "rgb", 1: "y"}.get(graph.input_channels)
    expected = {"rgb": 3, "y": 1}.get(color)
    if expected is None or graph.input_channels != expected or out_channels != expected:
        return None
    return color


def _same_spatial(where: str, shapes: list[TensorShape]) -> None:
    if len({s.scale for s in shapes}) != 1:
        raise GraphError(f"{where}: inputs have different spatial sizes {shapes}")


def _conv_out_scale(scale, stride: int):
    return GLOBAL if scale == GLOBAL else Fraction(scale) / stride


def _output_shape(graph: Graph, node: Node, ins: list[TensorShape]) -> TensorShape:
    where, a = node.name or node.op, node.attrs
    op = node.op
    if op == "conv2d":
        weight = graph.params[a["weight"]]
        _check_conv_params(graph, node, weight.shape[0])
        if weight.shape[1] * a["groups"] != ins[0].channels:
            raise GraphError(
                f"{where}: weight expects {weight.shape[1] * a['groups']} input channels, "
                f"got {ins[0].channels}"
            )
        k_eff = [a["dilation"][i] * (weight.shape[2 + i] - 1) + 1 for i in range(2)]
        # 'same'-style convs keep the size; strided convs divide it exactly.
        for i in range(2):
            if 2 * a["padding"][i] != k_eff[i] - 1 and a["stride"][i] == 1:
                raise GraphError(
                    f"{where}: padding {a['padding']} does not keep the spatial size for "
                    f"kernel {tuple(weight.shape[2:])} (only size-preserving or strided "
                    "convolutions are supported)"
                )
        if a["stride"][0] != a["stride"][1]:
            raise GraphError(f"{where}: unequal strides {a['stride']} are not supported")
        if a["stride"][0] > 1 and any(
            k_eff[i] - 2 * a["padding"][i] != a["stride"][i] for i in range(2)
        ):
            raise GraphError(
                f"{where}: strided conv must have kernel - 2*padding == stride "
                f"(got kernel {k_eff}, padding {a['padding']}, stride {a['stride']})"
            )
        shape = TensorShape(weight.shape[0], _conv_out_scale(ins[0].scale, a["stride"][0]))
        return _epilogue_shape(node, shape, ins, where)
    if op == "conv_transpose2d":
        weight = graph.params[a["weight"]]
        _check_conv_params(graph, node, weight.shape[1] * a["groups"])
        if weight.shape[0] != ins[0].channels:
            raise GraphError(f"{where}: weight expects {weight.shape[0]} input channels")
        s, k, p, op_ = a["stride"], weight.shape[2:], a["padding"], a["output_padding"]
        for i in range(2):
            # out = (in - 1) * s - 2p + d(k - 1) + op + 1 equals in * s exactly when:
            if a["dilation"][i] * (k[i] - 1) + op_[i] + 1 - 2 * p[i] != s[i]:
                raise GraphError(
                    f"{where}: transposed conv must upscale exactly by its stride "
                    f"(kernel {tuple(k)}, stride {s}, padding {p}, output_padding {op_})"
                )
        if s[0] != s[1]:
            raise GraphError(f"{where}: unequal strides {s} are not supported")
        shape = TensorShape(weight.shape[1] * a["groups"], Fraction(ins[0].scale) * s[0])
        return _epilogue_shape(node, shape, ins[:1], where)
    if op in ("add", "mul"):
        x, y = ins
        # The pooled (GLOBAL) factor of a channel scaling is always the second operand;
        # the frontends put it there.
        if op == "mul" and y.scale == GLOBAL:
            if y.channels not in (1, x.channels):
                raise GraphError(f"{where}: cannot scale {x.channels} channels by {y.channels}")
            return x
        if x != y:
            raise GraphError(f"{where}: operands differ in shape: {x} vs {y}")
        return x
    if op == "mul_add":
        x, s, skip = ins
        if s.scale != GLOBAL or s.channels not in (1, x.channels) or skip != x:
            raise GraphError(
                f"{where}: needs a pooled scale of 1 or {x.channels} channels and a skip of "
                f"the input's shape, got {s} and {skip}"
            )
        return x
    if op == "concat":
        _same_spatial(where, ins)
        return TensorShape(sum(s.channels for s in ins), ins[0].scale)
    if op == "global_avg_pool":
        return TensorShape(ins[0].channels, GLOBAL)
    if op == "torch_module":
        return TensorShape(a["out_channels"], ins[0].scale * a["scale"])
    if op == "pixel_shuffle":
        r = a["factor"]
        if ins[0].channels % (r * r):
            raise GraphError(f"{where}: {ins[0].channels} channels not divisible by {r}^2")
        return TensorShape(ins[0].channels // (r * r), ins[0].scale * r)
    if op == "pixel_unshuffle":
        r = a["factor"]
        return TensorShape(ins[0].channels * r * r, _conv_out_scale(ins[0].scale, r))
    if op == "resize":
        if a["mode"] not in RESIZE_MODES:
            raise GraphError(f"{where}: resize mode '{a['mode']}' is not supported")
        return TensorShape(ins[0].channels, ins[0].scale * a["factor"])
    for attr in ("mean", "var", "weight", "bias", "scale", "shift", "slope"):
        if attr in OPS[op].attrs:
            _check_per_channel(graph, node, attr, ins[0].channels)
    return ins[0]  # batch_norm, affine, activations keep the shape


def _check_per_channel(graph: Graph, node: Node, attr: str, channels: int) -> None:
    value = graph.params[node.attrs[attr]]
    if value.ndim != 1 or value.shape[0] not in (1, channels):
        raise GraphError(
            f"{node.name or node.op}: parameter '{attr}' has shape {value.shape}, expected "
            f"({channels},) or (1,)"
        )


def _check_conv_params(graph: Graph, node: Node, out_channels: int) -> None:
    where = node.name or node.op
    weight = graph.params[node.attrs["weight"]]
    if weight.ndim != 4 or weight.dtype != np.float32:
        raise GraphError(f"{where}: weight must be 4-D float32, got {weight.dtype} {weight.shape}")
    bias = graph.param(node.attrs["bias"])
    if bias is not None and bias.shape != (out_channels,):
        raise GraphError(f"{where}: bias has shape {bias.shape}, expected ({out_channels},)")
    if node.epilogue("activation") == "prelu":
        slope = graph.params[node.epilogue("activation_param")]
        if slope.ndim != 1 or slope.shape[0] not in (1, out_channels):
            raise GraphError(f"{where}: PReLU slope has shape {slope.shape}")


def _epilogue_shape(node: Node, shape: TensorShape, ins: list[TensorShape], where: str):
    r = node.epilogue("pixel_shuffle")
    gate = node.epilogue("gate")
    if gate is not None and (
        gate not in GATE_ACTIVATIONS
        or len(ins) != 2
        or r != 1
        or node.epilogue("skip_resize") is not None
    ):
        raise GraphError(
            f"{where}: gate '{gate}' needs one of {GATE_ACTIVATIONS}, a skip of the output's "
            "size and no pixel shuffle"
        )
    if r != 1:
        if shape.channels % (r * r):
            raise GraphError(f"{where}: {shape.channels} channels not divisible by {r}^2")
        shape = TensorShape(shape.channels // (r * r), shape.scale * r)
    if len(ins) > 1:
        skip = ins[1]
        if node.epilogue("skip_resize") is not None:
            factor = shape.scale / skip.scale
            if factor.denominator != 1:
                raise GraphError(f"{where}: skip resize factor {factor} is not an integer")
            skip = shape
        if skip != shape:
            raise GraphError(f"{where}: residual input {skip} does not match output {shape}")
    return shape
