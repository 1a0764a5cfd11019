"""Export of a Graph (before or after the passes) to ONNX: a fused conv epilogue expands
back into the plain ONNX ops it stands for, so onnxruntime can check what the engine runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fastsr.graph.ir import CUBIC_A, Graph, Node, require_captured
from fastsr.graph.onnx_import import META_KEY, MIN_OPSET, space_to_depth_order


def export_onnx(
    graph: Graph, path: str | Path, opset: int = 17, clamp_output: bool = False
) -> onnx.ModelProto:
    """Write the graph as an ONNX model with dynamic N, H and W; returns the model.

    Fused conv epilogues expand into the ONNX ops they stand for (Conv, activation,
    DepthToSpace CRD, Resize + Add). Graph.meta travels in the model's metadata.
    `clamp_output` ends the model with Clip(0, 1), as `fastsr.Upscaler` clamps every
    result: a file for other runtimes then gives what fastsr gives.
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old; {MIN_OPSET} or newer is needed")
    graph.validate()
    require_captured(graph, "export to ONNX")
    if clamp_output:
        graph = _clamped_to_unit(graph)
    exporter = _Exporter(graph)
    output_channels = graph.shapes()[graph.output].channels
    onnx_graph = helper.make_graph(
        exporter.nodes,
        "fastsr",
        [helper.make_tensor_value_info(
            graph.input, TensorProto.FLOAT, ["batch", graph.input_channels, "height", "width"]
        )],
        [helper.make_tensor_value_info(
            graph.output, TensorProto.FLOAT, ["batch", output_channels, "out_height", "out_width"]
        )],
        list(exporter.initializers.values()),
    )
    opset_ids = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        onnx_graph,
        opset_imports=opset_ids,
        ir_version=helper.find_min_ir_version_for(opset_ids),
        producer_name="fastsr",
    )
    meta = {key: value for key, value in graph.meta.items() if key != "optimized"}  # expanded
    helper.set_model_props(model, {META_KEY: json.dumps(meta, default=str)})
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return model


def _clamped_to_unit(graph: Graph) -> Graph:
    """The graph with a clamp to [0, 1] after its output, unless it already ends in one."""
    last = graph.producers().get(graph.output)
    if last is not None and last.op == "clamp" and (last.attrs["min"], last.attrs["max"]) == (
        0.0, 1.0
    ):
        return graph
    clamped = graph.copy()
    unclamped = f"{graph.output}/unclamped"
    for node in clamped.nodes:
        node.inputs = [unclamped if name == graph.output else name for name in node.inputs]
        if node.output == graph.output:
            node.output = unclamped
    clamped.nodes.append(
        Node("clamp", [unclamped], graph.output, {"min": 0.0, "max": 1.0}, "output clamp")
    )
    return clamped


_ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid",
                   "prelu": "PRelu", "leaky_relu": "LeakyRelu"}
_RESIZE_ATTRS = {
    "nearest": {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                "nearest_mode": "floor"},
    "bilinear": {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
    "bicubic": {"mode": "cubic", "coordinate_transformation_mode": "half_pixel",
                "cubic_coeff_a": CUBIC_A},
}


class _Exporter:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}
        for node in graph.nodes:
            _EXPORTERS[node.op](self, node)

    def _constant(self, name: str, value: np.ndarray) -> str:
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(
                np.ascontiguousarray(value, dtype=np.float32), name
            )
        return name

    def _param(self, name: str | None) -> str:
        return "" if name is None else self._constant(name, self.graph.params[name])

    def _channel_vector(self, name: str) -> str:
        """A (C,) parameter reshaped to (C, 1, 1) so that it broadcasts over N x C x H x W."""
        value = self.graph.params[name]
        return self._constant(f"{name}:per_channel", value.reshape(-1, 1, 1))

    def _op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def _conv(self, node: Node) -> None:
        a, out = node.attrs, node.output
        attrs = {
            "strides": list(a["stride"]),
            "pads": list(a["padding"]) * 2,
            "dilations": list(a["dilation"]),
            "group": a["groups"],
            "kernel_shape": list(self.graph.params[a["weight"]].shape[2:]),
        }
        op_type = "Conv"
        if node.op == "conv_transpose2d":
            op_type, attrs["output_padding"] = "ConvTranspose", list(a["output_padding"])
        inputs = [node.inputs[0], self._param(a["weight"])]
        if a["bias"] is not None:
            inputs.append(self._param(a["bias"]))
        y = self._op(op_type, inputs, f"{out}/conv", **attrs)
        y = self._activation(node.epilogue("activation"), node.epilogue("activation_param"), y,
                             f"{out}/activation")
        if node.epilogue("pixel_shuffle") != 1:
            y = self._op("DepthToSpace", [y], f"{out}/shuffled",
                         blocksize=node.epilogue("pixel_shuffle"), mode="CRD")
        if len(node.inputs) > 1:
            skip = node.inputs[1]
            mode = node.epilogue("skip_resize")
            if mode is not None:
                shapes = self.graph.shapes()
                factor = shapes[out].scale / shapes[skip].scale
                skip = self._resize(skip, mode, int(factor), f"{out}/skip")
            total = self._op("Add", [y, skip], f"{out}/sum")
            if node.epilogue("gate") is not None:
                gate = self._activation(node.epilogue("gate"), None, y, f"{out}/gate")
                scale = self._constant(f"{out}/gate_scale", np.float32(node.epilogue("gate_scale")))
                shift = self._constant(f"{out}/gate_shift", np.float32(node.epilogue("gate_shift")))
                gate = self._op("Mul", [gate, scale], f"{out}/gate_scaled")
                gate = self._op("Add", [gate, shift], f"{out}/gate_shifted")
                self._op("Mul", [total, gate], f"{out}/gated")
        self._rename_last(out)

    def _rename_last(self, output: str) -> None:
        """The last node emitted writes the IR node's output tensor."""
        last = self.nodes[-1]
        last.output[0] = output
        last.name = output

    def _activation(self, op: str | None, param, x: str, output: str) -> str:
        if op is None:
            return x
        if op == "prelu":
            return self._op("PRelu", [x, self._channel_vector(param)], output)
        if op == "leaky_relu":
            return self._op("LeakyRelu", [x], output, alpha=float(param))
        if op == "silu":  # ONNX has no SiLU before opset 24: x * Sigmoid(x)
            gate = self._op("Sigmoid", [x], f"{output}/gate")
            return self._op("Mul", [x, gate], output)
        return self._op(_ACTIVATION_OPS[op], [x], output)

    def _resize(self, x: str, mode: str, factor: int, output: str) -> str:
        scales = self._constant(f"{output}/scales", np.array([1, 1, factor, factor]))
        return self._op("Resize", [x, "", scales], output, **_RESIZE_ATTRS[mode])

    def _batch_norm(self, node: Node) -> None:
        a = node.attrs
        inputs = [node.inputs[0]] + [self._param(a[k]) for k in ("weight", "bias", "mean", "var")]
        self._op("BatchNormalization", inputs, node.output, epsilon=float(a["eps"]))

    def _affine(self, node: Node) -> None:
        scale, shift = node.attrs["scale"], node.attrs["shift"]
        y = node.inputs[0]
        # Arithmetic with a constant imports as affine; skip its identity half on the way out.
        if not np.all(self.graph.params[scale] == 1):
            y = self._op("Mul", [y, self._channel_vector(scale)], f"{node.output}/mul")
        if not np.all(self.graph.params[shift] == 0) or y == node.inputs[0]:
            y = self._op("Add", [y, self._channel_vector(shift)], f"{node.output}/add")
        self._rename_last(node.output)

    def _simple(self, node: Node) -> None:
        op_type, attrs = _SIMPLE_OPS[node.op]
        self._op(op_type, list(node.inputs), node.output, **attrs)

    def _mul_add(self, node: Node) -> None:
        x, scale, skip = node.inputs
        self._op("Add", [self._op("Mul", [x, scale], f"{node.output}/scaled"), skip], node.output)

    def _pointwise(self, node: Node) -> None:
        param = node.attrs.get("slope", node.attrs.get("alpha"))
        self._activation(node.op, param, node.inputs[0], node.output)

    def _pixel_shuffle(self, node: Node) -> None:
        self._op("DepthToSpace", [node.inputs[0]], node.output, blocksize=node.attrs["factor"],
                 mode="CRD")

    def _pixel_unshuffle(self, node: Node) -> None:
        # SpaceToDepth orders channels block offset first; a Gather makes it PyTorch's order.
        factor = node.attrs["factor"]
        blocks = self._op("SpaceToDepth", [node.inputs[0]], f"{node.output}/blocks",
                          blocksize=factor)
        channels = self.graph.shapes()[node.inputs[0]].channels
        indices = f"{node.output}/order"
        self.initializers[indices] = numpy_helper.from_array(
            space_to_depth_order(channels, factor).astype(np.int64), indices)
        self._op("Gather", [blocks, indices], node.output, axis=1)

    def _resize_node(self, node: Node) -> None:
        self._resize(node.inputs[0], node.attrs["mode"], node.attrs["factor"], node.output)

    def _clamp(self, node: Node) -> None:
        bounds = [
            "" if np.isinf(node.attrs[k]) else
            self._constant(f"{node.output}/{k}", np.float32(node.attrs[k]))
            for k in ("min", "max")
        ]
        self._op("Clip", [node.inputs[0], *bounds], node.output)


_SIMPLE_OPS = {
    "add": ("Add", {}),
    "mul": ("Mul", {}),
    "concat": ("Concat", {"axis": 1}),
    "global_avg_pool": ("GlobalAveragePool", {}),
}
_EXPORTERS = {
    "conv2d": _Exporter._conv,
    "conv_transpose2d": _Exporter._conv,
    "batch_norm": _Exporter._batch_norm,
    "affine": _Exporter._affine,
    "add": _Exporter._simple,
    "mul": _Exporter._simple,
    "mul_add": _Exporter._mul_add,
    "concat": _Exporter._simple,
    "global_avg_pool": _Exporter._simple,
    "pixel_shuffle": _Exporter._pixel_shuffle,
    "pixel_unshuffle": _Exporter._pixel_unshuffle,
    "resize": _Exporter._resize_node,
    "relu": _Exporter._pointwise,
    "prelu": _Exporter._pointwise,
    "leaky_relu": _Exporter._pointwise,
    "tanh": _Exporter._pointwise,
    "sigmoid": _Exporter._pointwise,
    "silu": _Exporter._pointwise,
    "clamp": _Exporter._clamp,
}
