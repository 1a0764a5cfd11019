"""Capture a PyTorch module into a Graph with torch.fx symbolic tracing.

Sizes read from tensors (`x.shape`, `x.size()`) are tracked symbolically, as a multiple of
the graph input's height or width, so that a forward which pads its input to a multiple
of a size and crops its output back (Real-ESRGAN x2, RCAN) captures: the padding
function is traced as one call (`pad_functions`) and becomes the identity, with its
multiple and mode in meta["padding"] for the engine's caller to apply to the whole frame
(`fastsr.padding`); the crop back to the input's size is then the identity too.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from fastsr.graph.ir import GLOBAL, RESIZE_MODES, Graph, GraphError, Node

_POINTWISE_MODULES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}
_POINTWISE_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", torch.tanh: "tanh", torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid", F.tanh: "tanh", F.silu: "silu",
}
_POINTWISE_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
_ADD = {operator.add, torch.add}
_SUB = {operator.sub, torch.sub}
_MUL = {operator.mul, torch.mul}


@dataclass(frozen=True)
class _Dim:
    """A spatial size read from a tensor: `factor` times the graph input's height or width."""

    axis: int  # 2 (height) or 3 (width), as in NCHW
    factor: Fraction


class _Tracer(torch.fx.Tracer):
    """Subclasses of nn.Conv2d that keep its forward (RCAN's MeanShift) stay one module."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, nn.Conv2d) and type(m).forward is nn.Conv2d.forward:
            return True
        return super().is_leaf_module(m, qualname)


def capture(module: nn.Module, input_channels: int, meta: dict | None = None,
            pad_functions: tuple = ()) -> Graph:
    """The module's forward as a Graph, its parameters copied out as float32 numpy.

    `pad_functions`: functions f(x, multiple, *, mode) that pad x at the bottom and right
    to a multiple of `multiple` (spandrel's pad_to_multiple); see the module docstring.
    Raises GraphError naming the first op that is not supported and where it was met.
    """
    module = module.eval()
    try:
        # Tensors as they are before tracing: a forward that reassigns one (SPAN's
        # `self.mean = self.mean.type_as(x)`) leaves a proxy in the module after it.
        tensors = {**_plain_tensors(module), **dict(module.named_parameters()),
                   **dict(module.named_buffers())}
        tracer = _Tracer(autowrap_functions=tuple(pad_functions))
        fx_graph = tracer.trace(module)
        traced = torch.fx.GraphModule(tracer.root, fx_graph)
    except Exception as error:
        raise GraphError(f"torch.fx could not trace {type(module).__name__}: {error}") from error
    return _Capture(traced, tensors, input_channels, dict(meta or {}), pad_functions).graph


class _Capture:
    def __init__(self, traced: torch.fx.GraphModule, tensors: dict, input_channels: int,
                 meta: dict, pad_functions: tuple = ()):
        self.tensors = tensors
        self.pad_functions = pad_functions
        self.meta = meta
        self.input_channels = input_channels
        self.dims: dict[str, object] = {}  # fx node name -> _Dim, int or tuple of them
        self.modules = dict(traced.named_modules())
        self.traced = traced
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self.tensor_of: dict[str, str] = {}  # fx node name -> IR tensor name
        self.constant_of: dict[str, np.ndarray] = {}  # fx node name -> float constant
        self.value_of: dict[str, object] = {}  # fx node name -> value computed from constants
        self.pooled: set[str] = set()  # IR tensors of spatial size 1x1 (after global pooling)
        placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise GraphError(f"expected a module with one input, got {len(placeholders)}")
        graph_input = placeholders[0].name
        self.graph_input = graph_input
        self.tensor_of[graph_input] = graph_input
        output = None
        for fx_node in traced.graph.nodes:
            if fx_node.op == "placeholder":
                continue
            if fx_node.op == "output":
                output = self._tensor(fx_node.args[0], fx_node)
                continue
            self._convert(fx_node)
        self.graph = Graph(graph_input, input_channels, output, self.nodes, self.params, meta)
        self.graph.validate()

    # -- sizes -----------------------------------------------------------------------------
    def _size_of(self, fx_node, tensor: str) -> tuple:
        partial = Graph(self.graph_input, self.input_channels, tensor, self.nodes, self.params)
        shape = partial.shapes()[tensor]
        if shape.scale == GLOBAL:
            raise GraphError(f"{self._where(fx_node)}: size of a pooled tensor is not supported")
        return (None, shape.channels, _Dim(2, shape.scale), _Dim(3, shape.scale))

    def _dim_arithmetic(self, fx_node, fn, args) -> bool:
        """Sizes times whole numbers (a crop to `h * scale`); True when handled."""
        values = [self.dims.get(a.name) if isinstance(a, torch.fx.Node) else a for a in args]
        if not any(isinstance(v, torch.fx.Node) and v.name in self.dims for v in args):
            return False
        dims = [v for v in values if isinstance(v, _Dim)]
        ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        if fn in _MUL and len(dims) == 1 and len(ints) == 1:
            self.dims[fx_node.name] = _Dim(dims[0].axis, dims[0].factor * ints[0])
            return True
        raise GraphError(
            f"{self._where(fx_node)}: arithmetic on a tensor's size ({values}) is not supported; "
            "fastsr runs the network on sizes it fixes when planning"
        )

    def _getitem(self, fx_node, source, index) -> None:
        if isinstance(source, torch.fx.Node) and source.name in self.dims:
            self.dims[fx_node.name] = self.dims[source.name][index]
            return
        x = self._tensor(source, fx_node)
        index = index if isinstance(index, tuple) else (index,)
        if len(index) > 4 or any(not isinstance(i, slice) for i in index):
            raise GraphError(f"{self._where(fx_node)}: indexing a tensor by {index} is not "
                             "supported (only crops back to the size the tensor has)")
        size = self._size_of(fx_node, x)
        for axis, part in enumerate(index):
            stop = self.dims.get(part.stop.name) if isinstance(part.stop, torch.fx.Node) else (
                part.stop)
            keeps_all = part.start in (None, 0) and part.step in (None, 1) and (
                stop is None or (axis >= 2 and stop == size[axis]))
            if not keeps_all:
                raise GraphError(
                    f"{self._where(fx_node)}: a crop to {part} on axis {axis} is not supported "
                    "(only a crop back to the size the tensor has)")
        self._alias(fx_node, x)

    def _pad_to_multiple(self, fx_node, args, kwargs) -> None:
        x = self._tensor(args[0], fx_node)
        if x != self.graph_input:
            raise GraphError(f"{self._where(fx_node)}: padding is supported only on the input")
        multiple = int(kwargs.get("multiple", args[1] if len(args) > 1 else 1))
        mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
        padding = self.meta.get("padding", {"multiple_of": 1, "mode": mode})
        if multiple > 1 and padding["multiple_of"] > 1 and padding["mode"] != mode:
            raise GraphError(f"{self._where(fx_node)}: a second padding mode '{mode}'")
        padding = {"multiple_of": math.lcm(padding["multiple_of"], multiple), "mode": mode}
        self.meta["padding"] = padding
        self._alias(fx_node, x)

    # -- helpers -------------------------------------------------------------------------
    def _where(self, fx_node) -> str:
        target = fx_node.target
        label = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        return f"{fx_node.name} ({fx_node.op} {label})"

    def _tensor(self, arg, fx_node) -> str:
        if isinstance(arg, torch.fx.Node) and arg.name in self.tensor_of:
            return self.tensor_of[arg.name]
        raise GraphError(f"{self._where(fx_node)}: expected a tensor operand, got {arg!r}")

    def _is_tensor(self, arg) -> bool:
        return isinstance(arg, torch.fx.Node) and arg.name in self.tensor_of

    def _constant(self, arg, fx_node) -> np.ndarray:
        if isinstance(arg, (int, float, np.ndarray, np.generic)):
            return np.asarray(arg, dtype=np.float32)
        if isinstance(arg, torch.fx.Node) and arg.name in self.constant_of:
            return self.constant_of[arg.name]
        raise GraphError(f"{self._where(fx_node)}: unsupported operand {arg!r}")

    def _param(self, name: str, value) -> str:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        self.params[name] = np.ascontiguousarray(value, dtype=np.float32)
        return name

    def _emit(self, fx_node, op: str, inputs: list[str], **attrs) -> None:
        self.nodes.append(Node(op, inputs, fx_node.name, attrs, self._where(fx_node)))
        self.tensor_of[fx_node.name] = fx_node.name
        if op == "global_avg_pool" or (op != "mul" and inputs and set(inputs) <= self.pooled):
            self.pooled.add(fx_node.name)

    def _rebind_input(self, fx_node) -> None:
        """An in-place op (nn.SiLU(inplace=True)) also changes its input: later readers of
        the input (SPAN returns its pre-activation tensor) see the result."""
        source = fx_node.args[0]
        if self._is_tensor(source):
            self.tensor_of[source.name] = self.tensor_of[fx_node.name]

    def _alias(self, fx_node, tensor: str) -> None:
        self.tensor_of[fx_node.name] = tensor

    # -- constants: work on parameters alone (SPAN fuses its conv weights in forward) is
    # done now, in torch, once ------------------------------------------------------------
    def _set_constant(self, fx_node, value) -> None:
        self.value_of[fx_node.name] = value
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            self.constant_of[fx_node.name] = value.cpu().numpy().astype(np.float32)

    def _foldable(self, fx_node) -> bool:
        nodes = []
        torch.fx.node.map_arg((fx_node.args, fx_node.kwargs), nodes.append)
        return bool(nodes) and all(n.name in self.value_of for n in nodes)

    def _fold(self, fx_node) -> None:
        args, kwargs = torch.fx.node.map_arg(
            (fx_node.args, fx_node.kwargs), lambda n: self.value_of[n.name]
        )
        with torch.no_grad():
            if fx_node.op == "call_function":
                value = fx_node.target(*args, **kwargs)
            elif fx_node.op == "call_method":
                value = getattr(args[0], fx_node.target)(*args[1:], **kwargs)
            else:
                value = self.modules[fx_node.target](*args, **kwargs)
        self._set_constant(fx_node, value)

    # -- conversion ----------------------------------------------------------------------
    def _convert(self, fx_node) -> None:
        if fx_node.op == "get_attr":
            value = self.tensors.get(fx_node.target)
            if value is None:
                value = operator.attrgetter(fx_node.target)(self.traced)
            if not isinstance(value, torch.Tensor):
                raise GraphError(
                    f"{self._where(fx_node)}: attribute {fx_node.target} is a "
                    f"{type(value).__name__}, not a tensor"
                )
            self._set_constant(fx_node, value.detach())
        elif self._foldable(fx_node):
            self._fold(fx_node)
        elif fx_node.op == "call_method" and fx_node.target == "size" and self._is_tensor(
                fx_node.args[0]):
            size = self._size_of(fx_node, self._tensor(fx_node.args[0], fx_node))
            self.dims[fx_node.name] = size if len(fx_node.args) < 2 else size[fx_node.args[1]]
        elif fx_node.op == "call_function" and fx_node.target is getattr and fx_node.args[1] == (
                "shape") and self._is_tensor(fx_node.args[0]):
            self.dims[fx_node.name] = self._size_of(fx_node, self._tensor(fx_node.args[0], fx_node))
        elif fx_node.op == "call_function" and fx_node.target is operator.getitem:
            self._getitem(fx_node, *fx_node.args)
        elif fx_node.op == "call_function" and fx_node.target in self.pad_functions:
            self._pad_to_multiple(fx_node, fx_node.args, fx_node.kwargs)
        elif fx_node.op == "call_function" and self._dim_arithmetic(
                fx_node, fx_node.target, fx_node.args):
            pass
        elif fx_node.op == "call_module":
            module = self.modules[fx_node.target]
            self._convert_module(fx_node, module)
            if getattr(module, "inplace", False):
                self._rebind_input(fx_node)
        elif fx_node.op == "call_function":
            self._convert_function(fx_node, fx_node.target, fx_node.args, fx_node.kwargs)
            if fx_node.kwargs.get("inplace", False):
                self._rebind_input(fx_node)
        elif fx_node.op == "call_method":
            self._convert_method(fx_node)
        else:
            raise GraphError(f"{self._where(fx_node)}: unsupported node kind")

    def _convert_module(self, fx_node, mod: nn.Module) -> None:
        x = self._tensor(fx_node.args[0], fx_node)
        p = fx_node.target
        if isinstance(mod, nn.Conv2d) and mod.padding_mode == "zeros" and not isinstance(
            mod.padding, str
        ):
            self._emit(
                fx_node, "conv2d", [x],
                weight=self._param(f"{p}.weight", mod.weight),
                bias=None if mod.bias is None else self._param(f"{p}.bias", mod.bias),
                stride=tuple(mod.stride), padding=tuple(mod.padding),
                dilation=tuple(mod.dilation), groups=mod.groups,
            )
        elif isinstance(mod, nn.ConvTranspose2d):
            self._emit(
                fx_node, "conv_transpose2d", [x],
                weight=self._param(f"{p}.weight", mod.weight),
                bias=None if mod.bias is None else self._param(f"{p}.bias", mod.bias),
                stride=tuple(mod.stride), padding=tuple(mod.padding),
                output_padding=tuple(mod.output_padding), dilation=tuple(mod.dilation),
                groups=mod.groups,
            )
        elif isinstance(mod, nn.BatchNorm2d) and mod.track_running_stats:
            channels = mod.num_features
            self._emit(
                fx_node, "batch_norm", [x],
                mean=self._param(f"{p}.running_mean", mod.running_mean),
                var=self._param(f"{p}.running_var", mod.running_var),
                weight=self._param(
                    f"{p}.weight", mod.weight if mod.affine else np.ones(channels)
                ),
                bias=self._param(f"{p}.bias", mod.bias if mod.affine else np.zeros(channels)),
                eps=float(mod.eps),
            )
        elif type(mod) in _POINTWISE_MODULES:
            self._emit(fx_node, _POINTWISE_MODULES[type(mod)], [x])
        elif isinstance(mod, nn.PReLU):
            self._emit(fx_node, "prelu", [x], slope=self._param(f"{p}.weight", mod.weight))
        elif isinstance(mod, nn.LeakyReLU):
            self._emit(fx_node, "leaky_relu", [x], alpha=float(mod.negative_slope))
        elif isinstance(mod, nn.PixelShuffle):
            self._emit(fx_node, "pixel_shuffle", [x], factor=int(mod.upscale_factor))
        elif isinstance(mod, nn.PixelUnshuffle):
            self._emit(fx_node, "pixel_unshuffle", [x], factor=int(mod.downscale_factor))
        elif isinstance(mod, nn.AdaptiveAvgPool2d) and _is_one(mod.output_size):
            self._emit(fx_node, "global_avg_pool", [x])
        elif isinstance(mod, nn.Upsample):
            self._resize(fx_node, x, mod.scale_factor, mod.mode, mod.align_corners, mod.size)
        elif isinstance(mod, nn.Hardtanh):
            self._emit(fx_node, "clamp", [x], min=float(mod.min_val), max=float(mod.max_val))
        elif isinstance(mod, (nn.Identity, nn.Dropout)):
            self._alias(fx_node, x)
        else:
            raise GraphError(
                f"{self._where(fx_node)}: module {type(mod).__name__} is not supported"
            )

    def _convert_function(self, fx_node, fn, args, kwargs) -> None:
        if fn in _POINTWISE_FUNCTIONS:
            self._emit(fx_node, _POINTWISE_FUNCTIONS[fn], [self._tensor(args[0], fx_node)])
        elif fn in _ADD or fn in _SUB or fn in _MUL:
            kind = "add" if fn in _ADD else "sub" if fn in _SUB else "mul"
            alpha = kwargs.get("alpha", 1)
            if alpha != 1:
                raise GraphError(f"{self._where(fx_node)}: add/sub with alpha is not supported")
            self._arithmetic(fx_node, kind, args[0], args[1])
        elif fn is operator.truediv and not self._is_tensor(args[1]):
            self._arithmetic(fx_node, "mul", args[0], 1.0 / self._constant(args[1], fx_node))
        elif fn is operator.neg:
            self._affine(fx_node, self._tensor(args[0], fx_node), -1.0, 0.0)
        elif fn is torch.cat:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if dim not in (1, -3):
                raise GraphError(f"{self._where(fx_node)}: concat on dim {dim}, expected 1")
            self._emit(fx_node, "concat", [self._tensor(t, fx_node) for t in args[0]])
        elif fn is F.interpolate:
            names = ["input", "size", "scale_factor", "mode", "align_corners"]
            params = dict(zip(names[: len(args)], args, strict=True))
            params.update(kwargs)
            self._resize(
                fx_node, self._tensor(params["input"], fx_node), params.get("scale_factor"),
                params.get("mode", "nearest"), params.get("align_corners"), params.get("size"),
            )
        elif fn in (F.pixel_shuffle, F.pixel_unshuffle):
            factor = kwargs.get("upscale_factor", kwargs.get("downscale_factor"))
            op = "pixel_shuffle" if fn is F.pixel_shuffle else "pixel_unshuffle"
            self._emit(fx_node, op, [self._tensor(args[0], fx_node)],
                       factor=int(args[1] if factor is None else factor))
        elif fn in (torch.clamp, torch.clip):
            lo = kwargs.get("min", args[1] if len(args) > 1 else None)
            hi = kwargs.get("max", args[2] if len(args) > 2 else None)
            self._emit(
                fx_node, "clamp", [self._tensor(args[0], fx_node)],
                min=float("-inf") if lo is None else float(lo),
                max=float("inf") if hi is None else float(hi),
            )
        elif fn is F.leaky_relu:
            alpha = kwargs.get("negative_slope", args[1] if len(args) > 1 else 0.01)
            self._emit(fx_node, "leaky_relu", [self._tensor(args[0], fx_node)], alpha=alpha)
        elif fn is F.adaptive_avg_pool2d and _is_one(args[1]):
            self._emit(fx_node, "global_avg_pool", [self._tensor(args[0], fx_node)])
        else:
            name = getattr(fn, "__name__", str(fn))
            raise GraphError(f"{self._where(fx_node)}: function {name} is not supported")

    def _convert_method(self, fx_node) -> None:
        method, args = fx_node.target, fx_node.args
        if method in _POINTWISE_METHODS:
            self._emit(fx_node, _POINTWISE_METHODS[method], [self._tensor(args[0], fx_node)])
        elif method in ("add", "sub", "mul"):
            self._arithmetic(fx_node, method, args[0], args[1])
        elif method in ("clamp", "clip"):
            self._convert_function(fx_node, torch.clamp, args, fx_node.kwargs)
        elif method == "type_as" and not self._is_tensor(args[0]):  # a constant: float32
            self._set_constant(fx_node, self.value_of[args[0].name])
        elif method in ("contiguous", "float", "type_as"):  # the graph is float32 throughout
            self._alias(fx_node, self._tensor(args[0], fx_node))
        else:
            raise GraphError(f"{self._where(fx_node)}: method .{method}() is not supported")

    def _arithmetic(self, fx_node, kind: str, a, b) -> None:
        if self._is_tensor(a) and self._is_tensor(b):
            ta, tb = self._tensor(a, fx_node), self._tensor(b, fx_node)
            if kind == "sub":
                negated = f"{fx_node.name}_neg"
                self.nodes.append(
                    Node("affine", [tb], negated, self._scale_shift(fx_node, -1.0, 0.0),
                         self._where(fx_node))
                )
                tb, kind = negated, "add"
            if kind == "mul" and ta in self.pooled and tb not in self.pooled:
                ta, tb = tb, ta  # the IR wants the pooled channel factor second
            self._emit(fx_node, kind, [ta, tb])
            return
        if self._is_tensor(b):  # constant on the left: commute (sub: c - x = -x + c)
            const, x = self._constant(a, fx_node), self._tensor(b, fx_node)
            if kind == "sub":
                self._affine(fx_node, x, -1.0, const)
                return
        else:
            const, x = self._constant(b, fx_node), self._tensor(a, fx_node)
            if kind == "sub":
                self._affine(fx_node, x, 1.0, -const)
                return
        if kind == "add":
            self._affine(fx_node, x, 1.0, const)
        else:
            self._affine(fx_node, x, const, 0.0)

    def _scale_shift(self, fx_node, scale, shift) -> dict:
        def per_channel(value, label):
            value = np.asarray(value, dtype=np.float32)
            if value.ndim == 4 and value.shape[0] == 1 and value.shape[2:] == (1, 1):
                value = value.reshape(-1)
            if value.ndim > 1:
                raise GraphError(
                    f"{self._where(fx_node)}: constant of shape {value.shape} is not a "
                    "per-channel (1, C, 1, 1) or scalar value"
                )
            return self._param(f"{fx_node.name}.{label}", value.reshape(-1))

        return {"scale": per_channel(scale, "scale"), "shift": per_channel(shift, "shift")}

    def _affine(self, fx_node, x: str, scale, shift) -> None:
        self._emit(fx_node, "affine", [x], **self._scale_shift(fx_node, scale, shift))

    def _resize(self, fx_node, x, scale_factor, mode, align_corners, size) -> None:
        where = self._where(fx_node)
        if size is not None or scale_factor is None:
            raise GraphError(f"{where}: resize by a fixed size is not supported; use scale_factor")
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
        if len(set(factors)) != 1 or float(factors[0]) != int(factors[0]) or factors[0] < 1:
            raise GraphError(f"{where}: resize factor {scale_factor} must be one whole number")
        if mode not in RESIZE_MODES:
            raise GraphError(f"{where}: resize mode '{mode}' is not supported")
        if align_corners:
            raise GraphError(f"{where}: align_corners=True is not supported")
        self._emit(fx_node, "resize", [x], mode=mode, factor=int(factors[0]))


def _plain_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Tensors kept as plain attributes (neither parameters nor buffers), by dotted name."""
    return {
        f"{prefix}.{key}" if prefix else key: value
        for prefix, sub in module.named_modules()
        for key, value in vars(sub).items()
        if isinstance(value, torch.Tensor)
    }


def _is_one(size) -> bool:
    return size == 1 or tuple(size) == (1, 1) if size is not None else False
