"""ONNX import into the Graph IR.

Import maps ONNX ops onto IR ops the way `from_torch` maps PyTorch ops, so both frontends
give the same graph for the same network: constant arithmetic becomes `affine`, Sub of
two tensors becomes a negating affine and an add.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fastsr.graph.ir import CUBIC_A, Graph, GraphError, Node, TensorShape
from fastsr.graph.onnx_views import Dim, View, describe, rearrangement, reshaped, tensor_dims

MIN_OPSET = 13
META_KEY = "fastsr.meta"  # metadata_props entry carrying Graph.meta as JSON

# ONNX Resize settings that reproduce the IR's resize (torch F.interpolate with
# align_corners=False) exactly for integer upscaling factors.
_RESIZE_MODES = {"nearest": "nearest", "linear": "bilinear", "cubic": "bicubic"}
_HALF_PIXEL = ("half_pixel", "pytorch_half_pixel")  # identical when the output is > 1 pixel
# torch nearest picks source floor(x / s). With an integer s, half-pixel coordinates
# (x + 0.5) / s - 0.5 never land on a .5 tie, so rounding either way picks the same pixel.
_NEAREST_EQUIVALENTS = {
    ("asymmetric", "floor"),
    *((mode, rounding) for mode in _HALF_PIXEL
      for rounding in ("round_prefer_floor", "round_prefer_ceil")),
}
_UNARY = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}


def import_onnx(path_or_model: str | Path | onnx.ModelProto) -> Graph:
    """The ONNX model (opset 13+, one NCHW float input with a fixed channel count) as a Graph.

    Raises GraphError naming the node for anything unsupported or malformed, and
    FileNotFoundError for a missing path.
    """
    model = _read_model(path_or_model)
    return _Importer(model).graph


def _read_model(path_or_model) -> onnx.ModelProto:
    if isinstance(path_or_model, onnx.ModelProto):
        model, source = path_or_model, "ONNX model"
    else:
        path = Path(path_or_model)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file at {path}")
        source = str(path)
        try:
            model = onnx.load(str(path))
        except Exception as error:  # protobuf raises several kinds on garbage bytes
            raise GraphError(f"{source} is not a readable ONNX model: {error}") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise GraphError(f"{source} is not a valid ONNX model: {error}") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise GraphError(f"{source} uses opset {opset}; opset {MIN_OPSET} or newer is needed")
    return model


def _attributes(node: onnx.NodeProto) -> dict:
    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


def _to_array(tensor: TensorProto, what: str) -> np.ndarray:
    try:
        value = numpy_helper.to_array(tensor)
    except Exception as error:  # wrong byte count for the declared shape, unknown dtype ...
        raise GraphError(f"{what} cannot be read: {error}") from None
    if value.dtype.kind == "f":
        return value.astype(np.float32)
    if value.dtype.kind in "iu":
        return value.astype(np.int64)
    raise GraphError(f"{what} has dtype {value.dtype}; only float and integer are supported")


def _per_channel(value: np.ndarray, where: str) -> np.ndarray:
    """A constant broadcast against N x C x H x W as a (C,) or (1,) vector, else an error.

    Under ONNX broadcasting only shapes (..., C, 1, 1) vary along channels alone; a (C,)
    constant would vary along the width.
    """
    if value.ndim > 4 or (value.ndim >= 3 and value.shape[-2:] != (1, 1)) or (
        value.ndim == 4 and value.shape[0] != 1
    ):
        raise GraphError(
            f"{where}: constant of shape {value.shape} is not a scalar or per-channel "
            "(1, C, 1, 1) value"
        )
    if value.ndim in (1, 2) and value.size != 1:
        raise GraphError(
            f"{where}: constant of shape {value.shape} broadcasts along the width, not the "
            "channels; expected a scalar or shape (C, 1, 1)"
        )
    return value.reshape(-1).astype(np.float32)


def space_to_depth_order(channels: int, factor: int) -> np.ndarray:
    """Channel c*r*r + k of PyTorch's pixel_unshuffle (k = i*r + j, the offset in the
    block) is channel k*C + c of ONNX's SpaceToDepth: the index list that Gathers one
    order from the other."""
    return np.arange(factor * factor * channels).reshape(factor * factor, channels).T.reshape(-1)


class _Importer:
    def __init__(self, model: onnx.ModelProto):
        onnx_graph = model.graph
        self.constants: dict[str, np.ndarray] = {
            init.name: _to_array(init, f"initializer '{init.name}'")
            for init in onnx_graph.initializer
        }
        inputs = [v for v in onnx_graph.input if v.name not in self.constants]
        if len(inputs) != 1 or len(onnx_graph.output) != 1:
            raise GraphError(
                f"expected one input and one output, got {len(inputs)} inputs "
                f"({[v.name for v in inputs]}) and {len(onnx_graph.output)} outputs"
            )
        graph_input = inputs[0].name
        channels = _input_channels(inputs[0])
        # a file exported for one batch size writes it into its shapes as a constant
        batch = inputs[0].type.tensor_type.shape.dim[0]
        self.batch = Dim.of(batch.dim_value) if batch.HasField("dim_value") else None
        self.graph_input, self.input_channels = graph_input, channels
        output_name = onnx_graph.output[0].name
        self.uses = Counter(name for node in onnx_graph.node for name in node.input)
        self.uses[output_name] += 1
        self.tensor_of = {graph_input: graph_input}  # ONNX name -> IR tensor name
        self.global_tensors: set[str] = set()  # IR tensors of spatial size 1x1 (pooled)
        # SpaceToDepth output (ONNX name) -> (its pixel_unshuffle IR tensor, the Gather
        # indices that turn the ONNX channel order into PyTorch's); read through that
        # Gather, or by a conv whose weights are permuted to match
        self.space_to_depth: dict[str, tuple[str, np.ndarray]] = {}
        # sizes computed at run time (Shape and arithmetic on it): a scalar or a vector
        self.sizes: dict[str, Dim | tuple[Dim, ...]] = {}
        # Reshape / Transpose results (ONNX name) -> the view and the node that made it;
        # a 4-D one becomes an IR tensor when something else reads it
        self.views: dict[str, tuple[View, onnx.NodeProto]] = {}
        # zero Pad results (ONNX name) -> (the padded IR tensor, (top, left, bottom, right)):
        # folded into the padding of the Conv that reads them, the only reader allowed
        self.zero_pads: dict[str, tuple[str, tuple[int, int, int, int]]] = {}
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        for node in onnx_graph.node:
            self._convert(node)
        if output_name in self.space_to_depth:
            self._unordered(output_name)
        if output_name in self.views:
            self._resolve_view(output_name, "graph output")
        if output_name in self.zero_pads:
            self._pad_not_into_a_conv("graph output")
        if output_name not in self.tensor_of:
            raise GraphError(f"graph output '{output_name}' is not computed from the input")
        meta = _read_meta(model)
        self.graph = Graph(
            graph_input, channels, self.tensor_of[output_name], self.nodes, self.params, meta
        )
        self.graph.validate()

    # -- operands -------------------------------------------------------------------------
    @staticmethod
    def _where(node: onnx.NodeProto) -> str:
        return f"{node.name or next(iter(node.output), 'unnamed')} ({node.op_type})"

    def _present(self, node: onnx.NodeProto, index: int) -> bool:
        return index < len(node.input) and node.input[index] != ""

    def _tensor(self, node: onnx.NodeProto, index: int) -> str:
        name = node.input[index] if index < len(node.input) else ""
        if name in self.space_to_depth:
            self._unordered(name, self._where(node))
        if name in self.views:
            self._resolve_view(name, self._where(node))
        if name in self.zero_pads:
            self._pad_not_into_a_conv(self._where(node))
        if name not in self.tensor_of:
            kind = "a constant" if name in self.constants or name in self.sizes else "undefined"
            raise GraphError(f"{self._where(node)}: input '{name}' is {kind}, expected a tensor")
        return self.tensor_of[name]

    def _constant(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.constants:
            raise GraphError(f"{self._where(node)}: {what} ('{name}') must be a constant")
        return self.constants[name]

    def _param(self, node: onnx.NodeProto, role: str, value: np.ndarray, shape=None) -> str:
        if value.dtype != np.float32:
            raise GraphError(f"{self._where(node)}: {role} has dtype {value.dtype}, not float")
        if shape is not None and value.shape != tuple(shape):
            raise GraphError(
                f"{self._where(node)}: {role} has shape {value.shape}, expected {tuple(shape)}"
            )
        name = f"{node.output[0]}.{role}"
        self.params[name] = np.ascontiguousarray(value)
        return name

    def _emit(self, node: onnx.NodeProto, op: str, inputs: list[str], output=None, **attrs):
        output = output or node.output[0]
        self.nodes.append(Node(op, inputs, output, attrs, self._where(node)))
        if op == "global_avg_pool" or all(i in self.global_tensors for i in inputs):
            self.global_tensors.add(output)
        self.tensor_of[output] = output
        return output

    # -- conversion -----------------------------------------------------------------------
    def _convert(self, node: onnx.NodeProto) -> None:
        if node.domain not in ("", "ai.onnx"):
            raise GraphError(f"{self._where(node)}: op domain '{node.domain}' is not supported")
        if len([name for name in node.output if name]) != 1:
            raise GraphError(f"{self._where(node)}: only single-output nodes are supported")
        if self._fold(node):
            return
        convert = _CONVERTERS.get(node.op_type)
        if convert is None:
            raise GraphError(f"{self._where(node)}: op '{node.op_type}' is not supported")
        convert(self, node, _attributes(node))

    def _fold(self, node: onnx.NodeProto) -> bool:
        """A node of constants only (torch.onnx computes a Pad's pads by a chain of them)
        becomes a constant, evaluated by onnx's reference runtime."""
        names = [name for name in node.input if name]
        if not names or any(name not in self.constants for name in names):
            return False
        if node.op_type in _NONDETERMINISTIC:
            raise GraphError(f"{self._where(node)}: op '{node.op_type}' is not supported")
        from onnx.reference import ReferenceEvaluator

        feeds = {name: self.constants[name] for name in names}
        try:
            (value,) = ReferenceEvaluator(node).run(None, feeds)
        except Exception as error:  # the reference runtime raises many kinds on bad nodes
            where = self._where(node)
            raise GraphError(f"{where}: cannot evaluate its constants: {error}") from None
        self.constants[node.output[0]] = np.asarray(value)
        return True

    def _conv(self, node, attrs) -> None:
        transposed = node.op_type == "ConvTranspose"
        where = self._where(node)
        weight = self._constant(node, 1, "weight")
        if weight.ndim != 4:
            raise GraphError(f"{where}: weight has shape {weight.shape}, expected 4-D")
        groups = attrs.get("group", 1)
        out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
        kernel = attrs.get("kernel_shape", weight.shape[2:])
        if tuple(kernel) != weight.shape[2:]:
            raise GraphError(f"{where}: kernel_shape {kernel} disagrees with weight {weight.shape}")
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise GraphError(f"{where}: auto_pad {attrs['auto_pad']} is not supported; use pads")
        if "output_shape" in attrs:
            raise GraphError(f"{where}: output_shape is not supported; use output_padding")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        padded = self.zero_pads.get(node.input[0])
        if padded is not None and not transposed:
            pads = [a + b for a, b in zip(pads, padded[1], strict=True)]
        if pads[:2] != pads[2:]:
            raise GraphError(f"{where}: asymmetric pads {pads} are not supported")
        bias = None
        if self._present(node, 2):
            bias = self._param(node, "bias", self._constant(node, 2, "bias"), (out_channels,))
        blocks = self.space_to_depth.get(node.input[0])
        if blocks is not None and not transposed and groups == 1:
            # reads the pixel_unshuffle tensor: its channel k is ONNX's channel order[k]
            weight = np.take(weight, blocks[1], axis=1)
            x = blocks[0]
        elif padded is not None and not transposed:
            x = padded[0]
        else:
            x = self._tensor(node, 0)
        common = {
            "weight": self._param(node, "weight", weight),
            "bias": bias,
            "stride": tuple(attrs.get("strides", (1, 1))),
            "padding": tuple(pads[:2]),
            "dilation": tuple(attrs.get("dilations", (1, 1))),
            "groups": groups,
        }
        if transposed:
            output_padding = tuple(attrs.get("output_padding", (0, 0)))
            self._emit(node, "conv_transpose2d", [x], output_padding=output_padding, **common)
        else:
            self._emit(node, "conv2d", [x], **common)

    def _pad(self, node, attrs) -> None:
        """A zero Pad of H and W, kept aside for the Conv that reads it: the IR pads inside
        its convs (with zeros), so other modes and other readers are refused."""
        where = self._where(node)
        mode = attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            raise GraphError(f"{where}: Pad mode '{mode}' is not supported; fastsr's convs pad "
                             "with zeros (a zero Pad in front of a Conv is imported)")
        if self._present(node, 2) and np.any(self._constant(node, 2, "constant_value") != 0):
            raise GraphError(f"{where}: Pad with a non-zero constant_value is not supported")
        given = [int(v) for v in self._constant(node, 1, "pads").reshape(-1)]
        axes = [0, 1, 2, 3]
        if self._present(node, 3):
            axes = [int(a) % 4 for a in self._constant(node, 3, "axes").reshape(-1)]
        if len(given) != 2 * len(axes):
            raise GraphError(f"{where}: {len(given)} pads for {len(axes)} axes")
        begin, end = [0] * 4, [0] * 4
        for axis, before, after in zip(axes, given[: len(axes)], given[len(axes):], strict=True):
            begin[axis], end[axis] = before, after
        if begin[:2] != [0, 0] or end[:2] != [0, 0] or min(begin + end) < 0:
            raise GraphError(f"{where}: Pad {given} is not supported; only adding rows and "
                             "columns (H and W) is")
        self.zero_pads[node.output[0]] = (self._tensor(node, 0), (*begin[2:], *end[2:]))

    @staticmethod
    def _pad_not_into_a_conv(reader: str) -> None:
        raise GraphError(f"{reader} reads a Pad's output: fastsr imports a zero Pad only as "
                         "the padding of the Conv right after it")

    def _batch_norm(self, node, attrs) -> None:
        if attrs.get("training_mode", 0):
            raise GraphError(f"{self._where(node)}: training-mode BatchNormalization")
        roles = ("weight", "bias", "mean", "var")
        values = [self._constant(node, i + 1, role) for i, role in enumerate(roles)]
        if values[0].ndim != 1:
            raise GraphError(f"{self._where(node)}: scale has shape {values[0].shape}, not (C,)")
        names = {
            role: self._param(node, role, value, values[0].shape)
            for role, value in zip(roles, values, strict=True)
        }
        self._emit(node, "batch_norm", [self._tensor(node, 0)],
                   eps=float(attrs.get("epsilon", 1e-5)), **names)

    def _unary(self, node, attrs) -> None:
        self._emit(node, _UNARY[node.op_type], [self._tensor(node, 0)])

    def _prelu(self, node, attrs) -> None:
        slope = _per_channel(self._constant(node, 1, "slope"), self._where(node))
        self._emit(node, "prelu", [self._tensor(node, 0)], slope=self._param(node, "slope", slope))

    def _leaky_relu(self, node, attrs) -> None:
        alpha = float(attrs.get("alpha", 0.01))
        self._emit(node, "leaky_relu", [self._tensor(node, 0)], alpha=alpha)

    def _affine(self, node, x: str, scale, shift, output=None) -> str:
        where = self._where(node)
        role = output or node.output[0]
        scale_name, shift_name = f"{role}.scale", f"{role}.shift"
        self.params[scale_name] = _per_channel(np.asarray(scale, np.float32), where)
        self.params[shift_name] = _per_channel(np.asarray(shift, np.float32), where)
        return self._emit(node, "affine", [x], output, scale=scale_name, shift=shift_name)

    def _arithmetic(self, node, attrs) -> None:
        kind = node.op_type
        a, b = node.input[0], node.input[1]
        for name in {a, b} & self.views.keys():
            self._resolve_view(name, self._where(node))
        if a in self.sizes or b in self.sizes:
            self._size_arithmetic(node, kind)
        elif a in self.constants and b in self.constants:  # a constant subexpression: fold it
            folds = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
            result = folds[kind](self.constants[a], self.constants[b])
            self.constants[node.output[0]] = result.astype(self.constants[a].dtype)
        elif a in self.tensor_of and b in self.tensor_of:
            self._tensor_arithmetic(node, kind, self.tensor_of[a], self.tensor_of[b])
        elif a in self.tensor_of:
            x, c = self.tensor_of[a], self._constant(node, 1, "operand")
            if kind == "Div":
                kind, c = "Mul", 1.0 / c
            scale, shift = {"Add": (1.0, c), "Sub": (1.0, -c), "Mul": (c, 0.0)}[kind]
            self._affine(node, x, scale, shift)
        else:
            c, x = self._constant(node, 0, "operand"), self._tensor(node, 1)
            if kind == "Div":
                raise GraphError(f"{self._where(node)}: dividing a constant by a tensor")
            scale, shift = {"Add": (1.0, c), "Sub": (-1.0, c), "Mul": (c, 0.0)}[kind]
            self._affine(node, x, scale, shift)

    def _tensor_arithmetic(self, node, kind: str, x: str, y: str) -> None:
        if kind == "Div":
            raise GraphError(f"{self._where(node)}: division by a tensor is not supported")
        if kind == "Sub":
            y = self._affine(node, y, -1.0, 0.0, output=f"{node.output[0]}.negated")
            kind = "Add"
        if kind == "Mul" and x in self.global_tensors and y not in self.global_tensors:
            x, y = y, x  # the IR's mul takes the pooled (per-channel) operand second
        self._emit(node, "add" if kind == "Add" else "mul", [x, y])

    def _concat(self, node, attrs) -> None:
        if any(name in self.sizes for name in node.input):
            if attrs.get("axis") not in (0, -1):
                raise GraphError(f"{self._where(node)}: Concat of sizes on axis "
                                 f"{attrs.get('axis')}")
            parts = [self._size(node, i, vector=True) for i in range(len(node.input))]
            self._set_size(node, tuple(d for part in parts for d in part))
            return
        if all(name in self.constants for name in node.input):
            values = [self.constants[name] for name in node.input]
            self.constants[node.output[0]] = np.concatenate(values, attrs.get("axis", 0))
            return
        if attrs.get("axis") not in (1, -3):
            raise GraphError(f"{self._where(node)}: Concat on axis {attrs.get('axis')}, expected 1")
        self._emit(node, "concat", [self._tensor(node, i) for i in range(len(node.input))])

    def _depth_to_space(self, node, attrs) -> None:
        factor = int(attrs["blocksize"])
        x = self._tensor(node, 0)
        if attrs.get("mode", "DCR") == "DCR":
            self._reorder_channels_to_crd(node, x, factor)
        self._emit(node, "pixel_shuffle", [x], factor=factor)

    def _space_to_depth(self, node, attrs) -> None:
        factor = int(attrs["blocksize"])
        x = self._tensor(node, 0)
        channels = self._channels(x)
        unshuffled = self._emit(node, "pixel_unshuffle", [x], output=f"{node.output[0]}.crd",
                                factor=factor)
        del self.tensor_of[unshuffled]  # readable only through the Gather that reorders it
        self.space_to_depth[node.output[0]] = (unshuffled, space_to_depth_order(channels, factor))

    @staticmethod
    def _unordered(name: str, where: str = "graph output") -> None:
        raise GraphError(
            f"{where}: '{name}' is a SpaceToDepth output read without the Gather that puts its "
            "channels in PyTorch's pixel_unshuffle order; only that Gather or a Conv (group "
            "1) may read it"
        )

    def _gather(self, node, attrs) -> None:
        if node.input[0] in self.sizes or node.input[0] in self.constants:
            self._gather_values(node, attrs)
            return
        source = self.space_to_depth.get(node.input[0])
        indices = self.constants.get(node.input[1]) if len(node.input) > 1 else None
        if (
            source is None or attrs.get("axis", 0) != 1 or indices is None
            or not np.array_equal(indices.reshape(-1), source[1])
        ):
            raise GraphError(
                f"{self._where(node)}: Gather is supported only as the channel reorder after "
                "a SpaceToDepth that makes it PyTorch's pixel_unshuffle (as fastsr exports it)"
            )
        self.tensor_of[node.output[0]] = source[0]

    def _channels(self, tensor: str) -> int:
        return self._shape_of(tensor).channels

    def _shape_of(self, tensor: str) -> TensorShape:
        partial = Graph(self.graph_input, self.input_channels, tensor, self.nodes, self.params)
        return partial.shapes()[tensor]

    def _reorder_channels_to_crd(self, node, x: str, factor: int) -> None:
        """Make a DCR DepthToSpace a CRD one (pixel shuffle) by permuting the output
        channels of the conv that feeds it; no other producer can be rewritten safely."""
        conv = next((n for n in self.nodes if n.output == x), None)
        if (
            conv is None
            or conv.op not in ("conv2d", "conv_transpose2d")
            or conv.attrs["groups"] != 1
            or x != node.input[0]  # reached through an Identity, which may have other readers
            or self.uses[node.input[0]] != 1
        ):
            raise GraphError(
                f"{self._where(node)}: DepthToSpace mode DCR is supported only right after a "
                "Conv (groups 1) used nowhere else; export with mode CRD (pixel shuffle)"
            )
        weight = self.params[conv.attrs["weight"]]
        out_axis = 0 if conv.op == "conv2d" else 1
        depth, remainder = divmod(weight.shape[out_axis], factor * factor)
        if remainder:
            raise GraphError(f"{self._where(node)}: {weight.shape[out_axis]} channels do not "
                             f"divide by blocksize {factor} squared")
        # CRD channel c*r*r + k reads what DCR keeps in channel k*depth + c (k = i*r + j).
        order = np.arange(depth * factor * factor).reshape(factor * factor, depth).T.reshape(-1)
        self.params[conv.attrs["weight"]] = np.ascontiguousarray(np.take(weight, order, out_axis))
        if conv.attrs["bias"] is not None:
            self.params[conv.attrs["bias"]] = self.params[conv.attrs["bias"]][order]

    # -- sizes read at run time and the views they shape (fastsr.graph.onnx_views) ------
    def _size(self, node, index: int, vector: bool = False):
        """A size operand as Dims: a scalar Dim, or a tuple of them (always for vector)."""
        name = node.input[index] if index < len(node.input) else ""
        if name in self.sizes:
            value = self.sizes[name]
        elif name in self.constants and self.constants[name].dtype.kind == "i":
            array = self.constants[name]
            value = tuple(Dim.of(v) for v in array.reshape(-1)) if array.ndim else Dim.of(array)
        else:
            raise GraphError(f"{self._where(node)}: input '{name}' is not an integer size")
        if vector and isinstance(value, Dim):
            raise GraphError(f"{self._where(node)}: '{name}' is a scalar, expected a 1-D size")
        return value

    def _set_size(self, node, value) -> None:
        """Stores a size; one whose every dim is a whole constant becomes a constant."""
        dims = (value,) if isinstance(value, Dim) else value
        if all(d.constant is not None for d in dims):
            array = np.asarray([d.constant for d in dims], np.int64)
            self.constants[node.output[0]] = array.reshape(()) if isinstance(value, Dim) else array
        else:
            self.sizes[node.output[0]] = value

    def _view(self, node, index: int = 0) -> View:
        name = node.input[index]
        if name in self.views:
            return self.views[name][0]
        tensor = self._tensor(node, index)
        return View.of(tensor, tensor_dims(self._shape_of(tensor), self.batch))

    def _set_view(self, node, view: View) -> None:
        self.views[node.output[0]] = (view, node)

    def _resolve_view(self, name: str, where: str) -> None:
        """A view read as a tensor: its source when it is the identity, else the pixel
        (un)shuffle it proves to be."""
        view, made_by = self.views.pop(name)
        if len(view.dims) != 4:
            raise GraphError(f"{where}: '{name}' is a {len(view.dims)}-D view "
                             f"{describe(view.dims)} of '{view.source}'; only 4-D tensors "
                             "can be read")
        found = rearrangement(view, self._where(made_by))
        if found is None:
            self.tensor_of[name] = view.source
        else:
            self._emit(made_by, found[0], [view.source], output=name, factor=found[1])

    def _shape(self, node, attrs) -> None:
        dims = self._view(node).dims
        self._set_size(node, dims[slice(attrs.get("start", 0), attrs.get("end"))])

    def _gather_values(self, node, attrs) -> None:
        indices = self._constant(node, 1, "Gather indices")
        if node.input[0] in self.constants:
            data = self.constants[node.input[0]]
            self.constants[node.output[0]] = np.take(data, indices, attrs.get("axis", 0))
            return
        dims = self._size(node, 0, vector=True)
        if attrs.get("axis", 0) != 0 or indices.ndim > 1:
            raise GraphError(f"{self._where(node)}: Gather of a size along axis 0 only")
        picked = [dims[int(i)] for i in indices.reshape(-1)]
        self._set_size(node, picked[0] if indices.ndim == 0 else tuple(picked))

    def _size_arithmetic(self, node, kind: str) -> None:
        a, b = self._size(node, 0), self._size(node, 1)
        operate = {
            "Add": lambda x, y: x + y, "Sub": lambda x, y: x + -y,
            "Mul": lambda x, y: x * y, "Div": lambda x, y: x / y,
        }[kind]
        if isinstance(a, Dim) and isinstance(b, Dim):
            self._set_size(node, operate(a, b))
            return
        a, b = ((a,), b) if isinstance(a, Dim) else (a, (b,) if isinstance(b, Dim) else b)
        if len(a) != len(b) and 1 not in (len(a), len(b)):
            raise GraphError(f"{self._where(node)}: sizes of lengths {len(a)} and {len(b)}")
        length = max(len(a), len(b))
        a, b = (a * length if len(a) == 1 else a), (b * length if len(b) == 1 else b)
        self._set_size(node, tuple(operate(x, y) for x, y in zip(a, b, strict=True)))

    def _cast(self, node, attrs) -> None:
        to = helper.tensor_dtype_to_np_dtype(attrs["to"])
        name = node.input[0]
        if name in self.constants:
            self.constants[node.output[0]] = self.constants[name].astype(to)
        elif name in self.sizes and to.kind in "iu":
            self.sizes[node.output[0]] = self.sizes[name]
        elif name not in self.sizes and to == np.float32:
            self.tensor_of[node.output[0]] = self._tensor(node, 0)
        else:
            raise GraphError(f"{self._where(node)}: Cast of '{name}' to {to} is not supported")

    def _axes(self, node, attrs) -> list[int] | None:
        if self._present(node, 1):
            return [int(a) for a in self._constant(node, 1, "axes").reshape(-1)]
        return list(attrs["axes"]) if "axes" in attrs else None

    def _unsqueeze(self, node, attrs) -> None:
        axes, name = self._axes(node, attrs), node.input[0]
        if name in self.constants:
            self.constants[node.output[0]] = np.expand_dims(self.constants[name], tuple(axes))
        elif name in self.sizes:
            if axes not in ([0], [-1]) or not isinstance(self.sizes[name], Dim):
                raise GraphError(f"{self._where(node)}: Unsqueeze of a size to anything but 1-D")
            self.sizes[node.output[0]] = (self.sizes[name],)
        else:
            view = self._view(node)
            dims = list(view.dims)
            for axis in sorted(a % (len(dims) + len(axes)) for a in axes):
                dims.insert(axis, Dim.of(1))
            self._set_view(node, view.reshape(tuple(dims)))

    def _squeeze(self, node, attrs) -> None:
        axes, name = self._axes(node, attrs), node.input[0]
        if name in self.constants:
            squeezed = np.squeeze(self.constants[name], None if axes is None else tuple(axes))
            self.constants[node.output[0]] = squeezed
            return
        if name in self.sizes:
            value = self.sizes[name]
            if isinstance(value, Dim) or len(value) != 1 or axes not in (None, [0], [-1]):
                raise GraphError(f"{self._where(node)}: Squeeze of a size to anything but a scalar")
            self.sizes[node.output[0]] = value[0]
            return
        view = self._view(node)
        rank = len(view.dims)
        drop = {a % rank for a in axes} if axes is not None else {
            i for i, d in enumerate(view.dims) if d.constant == 1}
        if any(view.dims[i].constant != 1 for i in drop):
            raise GraphError(f"{self._where(node)}: Squeeze of axes {sorted(drop)} of "
                             f"{describe(view.dims)}, which are not all 1")
        kept = tuple(d for i, d in enumerate(view.dims) if i not in drop)
        self._set_view(node, view.reshape(kept))

    def _reshape(self, node, attrs) -> None:
        name = node.input[0]
        if name in self.constants or name in self.sizes:  # a size or constant vector
            target = self._constant(node, 1, "shape of a size")
            values = self._size(node, 0) if name in self.sizes else self.constants[name]
            flat = np.asarray(values, object).reshape(-1)
            whole = target.size == 0 or int(target[0]) in (-1, flat.size)
            if target.size > 1 or not whole or (target.size == 0 and flat.size != 1):
                raise GraphError(f"{self._where(node)}: Reshape of a size to shape {target}")
            if name in self.sizes:
                self._set_size(node, flat[0] if target.size == 0 else tuple(flat))
            else:
                self.constants[node.output[0]] = self.constants[name].reshape(target.tolist())
            return
        view = self._view(node)
        target = self._size(node, 1, vector=True)
        dims = reshaped(view.dims, target, bool(attrs.get("allowzero", 0)), self._where(node))
        self._set_view(node, view.reshape(dims))

    def _transpose(self, node, attrs) -> None:
        view = self._view(node)
        perm = tuple(attrs.get("perm", reversed(range(len(view.dims)))))
        self._set_view(node, view.transpose(perm, self._where(node)))

    def _slice(self, node, attrs) -> None:
        """Only a slice that keeps everything: the crop back to the input's size of a
        forward that pads (the padding itself is fastsr's, `fastsr.padding`)."""
        where = self._where(node)
        if node.input[0] in self.constants or node.input[0] in self.sizes:
            self._slice_values(node)
            return
        starts, ends = self._size(node, 1, vector=True), self._size(node, 2, vector=True)
        dims = self._view(node).dims
        axes = (self._constant(node, 3, "axes").reshape(-1) if self._present(node, 3)
                else range(len(starts)))
        steps = (self._constant(node, 4, "steps").reshape(-1) if self._present(node, 4)
                 else [1] * len(starts))
        for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
            dim = dims[int(axis) % len(dims)]
            whole = end == dim or (end.constant is not None and (
                end.constant >= 2**31 - 1 or end.constant == dim.constant))
            if start.constant != 0 or step != 1 or not whole:
                raise GraphError(
                    f"{where}: Slice [{start}:{end}:{step}] of axis {axis} (size {dim}) cuts "
                    "the tensor; only a Slice that keeps it whole (a crop back to the input's "
                    "size) is supported"
                )
        self.tensor_of[node.output[0]] = self._tensor(node, 0)

    def _slice_values(self, node) -> None:
        bounds = [self._constant(node, i, "Slice bound").reshape(-1) if self._present(node, i)
                  else None for i in range(1, 5)]
        starts, ends, axes, steps = bounds
        name = node.input[0]
        if name in self.constants:
            value = self.constants[name]
        else:
            value = np.asarray(self._size(node, 0, vector=True), object)
        cut = [slice(None)] * value.ndim
        for i, axis in enumerate(range(len(starts)) if axes is None else axes):
            step = 1 if steps is None else int(steps[i])
            cut[int(axis)] = slice(int(starts[i]), int(ends[i]), step)
        result = value[tuple(cut)]
        if name in self.constants:
            self.constants[node.output[0]] = result
        else:
            self._set_size(node, tuple(result))

    def _resize(self, node, attrs) -> None:
        where = self._where(node)
        if self._present(node, 3):
            raise GraphError(f"{where}: Resize to fixed sizes is not supported; use scales")
        if "axes" in attrs:
            raise GraphError(f"{where}: Resize with axes is not supported")
        scales = self._constant(node, 2, "scales")
        if scales.shape != (4,) or list(scales[:2]) != [1, 1] or scales[2] != scales[3] or (
            scales[2] != int(scales[2]) or scales[2] < 1
        ):
            raise GraphError(
                f"{where}: scales {scales.tolist()} are not [1, 1, s, s] with a whole s >= 1"
            )
        mode = attrs.get("mode", "nearest")
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        if mode not in _RESIZE_MODES:
            raise GraphError(f"{where}: Resize mode '{mode}' is not supported")
        if mode == "nearest":
            rounding = attrs.get("nearest_mode", "round_prefer_floor")
            if (transform, rounding) not in _NEAREST_EQUIVALENTS:
                raise GraphError(
                    f"{where}: nearest Resize with {transform}/{rounding} differs from torch "
                    "nearest; use asymmetric/floor"
                )
        elif transform not in _HALF_PIXEL:
            raise GraphError(
                f"{where}: coordinate_transformation_mode '{transform}' is not supported; "
                "use half_pixel (torch align_corners=False)"
            )
        if mode == "cubic" and (
            attrs.get("cubic_coeff_a", CUBIC_A) != CUBIC_A
            or attrs.get("exclude_outside", 0)
        ):
            raise GraphError(
                f"{where}: cubic Resize must use cubic_coeff_a -0.75 and exclude_outside 0 "
                "(torch bicubic)"
            )
        self._emit(node, "resize", [self._tensor(node, 0)], mode=_RESIZE_MODES[mode],
                   factor=int(scales[2]))

    def _global_average_pool(self, node, attrs) -> None:
        self._emit(node, "global_avg_pool", [self._tensor(node, 0)])

    def _clip(self, node, attrs) -> None:
        bounds = []
        for index, default in ((1, -np.inf), (2, np.inf)):
            if not self._present(node, index):
                bounds.append(float(default))
                continue
            value = self._constant(node, index, "Clip bound")
            if value.size != 1:
                raise GraphError(f"{self._where(node)}: Clip bound of shape {value.shape}")
            bounds.append(float(value.reshape(())))
        self._emit(node, "clamp", [self._tensor(node, 0)], min=bounds[0], max=bounds[1])

    def _identity(self, node, attrs) -> None:
        source = node.input[0]
        if source in self.constants:
            self.constants[node.output[0]] = self.constants[source]
        elif source in self.sizes:
            self.sizes[node.output[0]] = self.sizes[source]
        elif source in self.views:
            self.views[node.output[0]] = self.views[source]
        else:
            self.tensor_of[node.output[0]] = self._tensor(node, 0)

    def _constant_node(self, node, attrs) -> None:
        where = self._where(node)
        if "value" in attrs:
            value = _to_array(attrs["value"], where)
        elif attrs.keys() & {"value_float", "value_floats"}:
            value = np.asarray(attrs.get("value_float", attrs.get("value_floats")), np.float32)
        elif attrs.keys() & {"value_int", "value_ints"}:
            value = np.asarray(attrs.get("value_int", attrs.get("value_ints")), np.int64)
        else:
            raise GraphError(f"{where}: only numeric Constant values are supported")
        self.constants[node.output[0]] = value


_NONDETERMINISTIC = {"RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"}

_CONVERTERS = {
    "Conv": _Importer._conv,
    "ConvTranspose": _Importer._conv,
    "BatchNormalization": _Importer._batch_norm,
    "Relu": _Importer._unary,
    "Tanh": _Importer._unary,
    "Sigmoid": _Importer._unary,
    "PRelu": _Importer._prelu,
    "LeakyRelu": _Importer._leaky_relu,
    "Add": _Importer._arithmetic,
    "Sub": _Importer._arithmetic,
    "Mul": _Importer._arithmetic,
    "Div": _Importer._arithmetic,
    "Concat": _Importer._concat,
    "DepthToSpace": _Importer._depth_to_space,
    "SpaceToDepth": _Importer._space_to_depth,
    "Gather": _Importer._gather,
    "Resize": _Importer._resize,
    "GlobalAveragePool": _Importer._global_average_pool,
    "Clip": _Importer._clip,
    "Identity": _Importer._identity,
    "Constant": _Importer._constant_node,
    "Shape": _Importer._shape,
    "Cast": _Importer._cast,
    "Unsqueeze": _Importer._unsqueeze,
    "Squeeze": _Importer._squeeze,
    "Reshape": _Importer._reshape,
    "Transpose": _Importer._transpose,
    "Slice": _Importer._slice,
    "Pad": _Importer._pad,
}


def _input_channels(value: onnx.ValueInfoProto) -> int:
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type != TensorProto.FLOAT:
        raise GraphError(f"input '{value.name}' is not float32")
    dims = tensor_type.shape.dim
    if len(dims) != 4:
        raise GraphError(f"input '{value.name}' has {len(dims)} dimensions, expected N x C x H x W")
    if not dims[1].HasField("dim_value") or dims[1].dim_value < 1:
        raise GraphError(
            f"input '{value.name}' has a dynamic channel dimension; the channel count "
            "must be fixed"
        )
    return dims[1].dim_value


def _read_meta(model: onnx.ModelProto) -> dict:
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            try:
                return json.loads(prop.value)
            except json.JSONDecodeError as error:
                raise GraphError(f"metadata '{META_KEY}' is not JSON: {error}") from None
    return {}
