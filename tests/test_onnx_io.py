"""ONNX export and import, checked against eager torch and onnxruntime as independent references."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from op_cases import OP_CASES, build_case, case_size

from fastsr.backends.reference import run_graph
from fastsr.engine import Engine
from fastsr.graph.from_torch import capture
from fastsr.graph.ir import Graph, GraphError, Node
from fastsr.graph.onnx_export import export_onnx
from fastsr.graph.onnx_import import import_onnx
from fastsr.graph.passes import optimize

# torch's TorchScript exporter (dynamo=False) warns that it is legacy; it needs no onnxscript.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _input(channels: int, h: int = 12, w: int = 10, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, channels, h, w, generator=torch.Generator().manual_seed(h * w))


def _onnxruntime(path_or_model, x: torch.Tensor) -> torch.Tensor:
    source = path_or_model.SerializeToString() if isinstance(
        path_or_model, onnx.ModelProto) else str(path_or_model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(y)


def _eager(case: str):
    module, channels = build_case(case)
    x = _input(channels, *case_size(case, 12, 10))
    with torch.no_grad():
        return module, channels, x, module(x)


def _torch_export(module, channels: int, path) -> None:
    torch.onnx.export(
        module, _input(channels, 8, 8, 1), str(path), dynamo=False, opset_version=17,
        input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}},
    )


@pytest.mark.parametrize("optimized", [False, True], ids=["captured", "optimized"])
@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_exported_graph_runs_in_onnxruntime_like_eager_torch(case, optimized, tmp_path):
    module, channels, x, expected = _eager(case)
    graph = capture(module, channels)
    graph = optimize(graph) if optimized else graph
    export_onnx(graph, tmp_path / "model.onnx")
    got = _onnxruntime(tmp_path / "model.onnx", x)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_torch_exported_onnx_imports_and_matches_eager_torch(case, tmp_path):
    module, channels, x, expected = _eager(case)
    _torch_export(module, channels, tmp_path / "torch.onnx")
    graph = import_onnx(tmp_path / "torch.onnx")
    assert graph.input_channels == channels
    with torch.no_grad():
        torch.testing.assert_close(run_graph(graph, x), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(run_graph(optimize(graph), x), expected, atol=1e-5, rtol=0)


class _WrittenOutShuffles(torch.nn.Module):
    """Pixel unshuffle by 2 and pixel shuffle by 4 written with view / permute / reshape on
    the tensor's own size, as community model code does; `shuffle_perm` may be wrong."""

    def __init__(self, shuffle_perm=(0, 1, 4, 2, 5, 3)):
        super().__init__()
        self.body = torch.nn.Conv2d(12, 48, 3, padding=1)
        self.shuffle_perm = shuffle_perm

    def forward(self, x):
        n, c, h, w = x.size()
        x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        x = self.body(x.reshape(n, c * 4, h // 2, w // 2))
        n, c, h, w = x.size()
        x = x.view(n, c // 16, 4, 4, h, w).permute(*self.shuffle_perm)
        return x.reshape(n, c // 16, h * 4, w * 4)


def _real_esrgan_x2():
    """spandrel's RRDB with Real-ESRGAN x2's pixel unshuffle, a small config."""
    from spandrel_cases import build

    return build("esrgan_x2_unshuffle"), ["pixel_unshuffle"]


def _written_out_shuffles():
    torch.manual_seed(3)
    return _WrittenOutShuffles().eval(), ["pixel_unshuffle", "pixel_shuffle"]


def _dynamo_export(module, channels: int, path) -> None:
    """torch.onnx's dynamo exporter (onnxscript), height and width dynamic, batch 1."""
    pytest.importorskip("onnxscript")  # in the test extra
    h, w = torch.export.Dim("h", min=2), torch.export.Dim("w", min=2)
    program = torch.onnx.export(module, (_input(channels, 8, 8, 1),), dynamo=True,
                                opset_version=18, dynamic_shapes=({2: 2 * h, 3: 2 * w},))
    program.save(str(path))


@pytest.mark.parametrize("export", [_torch_export, _dynamo_export], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("network", [_real_esrgan_x2, _written_out_shuffles])
def test_runtime_shaped_pixel_shuffles_import_and_match_onnxruntime(network, export, tmp_path):
    """torch.onnx's exporters (dynamic sizes) write these as Reshape / Transpose chains over
    Shape / Gather / Concat ops, and the crop back to the input size as a Slice over them."""
    module, layout_ops = network()
    export(module, 3, tmp_path / "torch.onnx")
    model = onnx.load(str(tmp_path / "torch.onnx"))
    assert {"Shape", "Reshape", "Transpose"} <= {n.op_type for n in model.graph.node}
    graph = import_onnx(model)
    assert [n.op for n in graph.nodes if n.op in ("pixel_shuffle", "pixel_unshuffle")] == layout_ops
    engine = Engine(optimize(graph), "cpu")
    batch = 2 if export is _torch_export else 1
    for h, w in [(12, 10), (6, 16)]:
        x = _input(3, h, w, batch)
        expected = _onnxruntime(model, x)
        with torch.no_grad():
            torch.testing.assert_close(run_graph(graph, x), expected, atol=1e-5, rtol=0)
        got = engine.run(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_a_reshape_transpose_chain_that_is_no_pixel_shuffle_is_refused(tmp_path):
    module = _WrittenOutShuffles(shuffle_perm=(0, 1, 2, 4, 3, 5)).eval()
    _torch_export(module, 3, tmp_path / "torch.onnx")
    with pytest.raises(GraphError, match=r"permuted by \[0, 1, 2, 4, 3, 5\] .* is not a pixel "
                       "shuffle or pixel unshuffle"):
        import_onnx(tmp_path / "torch.onnx")


def test_space_to_depth_without_its_reorder_is_refused():
    model = helper.make_model(helper.make_graph(
        [helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12, None, None])]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(GraphError, match="SpaceToDepth output read without the Gather"):
        import_onnx(model)


def test_space_to_depth_into_a_conv_matches_onnxruntime():
    """A SpaceToDepth read by a Conv (no Gather): the conv's weights take PyTorch's order."""
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((5, 12, 3, 3)).astype(np.float32)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("SpaceToDepth", ["x"], ["s"], blocksize=2),
         helper.make_node("Conv", ["s", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5, None, None])],
        [numpy_helper.from_array(weight, "w")]),
        opset_imports=[helper.make_opsetid("", 17)])
    x = _input(3, 8, 6)
    expected = _onnxruntime(model, x)
    graph = import_onnx(model)
    assert [n.op for n in graph.nodes] == ["pixel_unshuffle", "conv2d"]
    with torch.no_grad():
        torch.testing.assert_close(run_graph(graph, x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("optimized", [False, True], ids=["captured", "optimized"])
@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_export_import_round_trip_matches_eager_torch(case, optimized, tmp_path):
    module, channels, x, expected = _eager(case)
    graph = capture(module, channels, meta={"scale": 2, "color": "rgb"})
    graph = optimize(graph) if optimized else graph
    export_onnx(graph, tmp_path / "model.onnx")
    imported = import_onnx(tmp_path / "model.onnx")
    assert imported.meta == {"scale": 2, "color": "rgb"}
    with torch.no_grad():
        torch.testing.assert_close(run_graph(imported, x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_export_works_across_opsets_and_input_sizes(opset, tmp_path):
    module, channels = build_case("shuffle_bicubic_skip")
    graph = optimize(capture(module, channels))
    model = export_onnx(graph, tmp_path / "model.onnx", opset=opset)
    for batch, h, w in [(1, 5, 7), (3, 16, 9)]:
        x = _input(channels, h, w, batch)
        with torch.no_grad():
            torch.testing.assert_close(_onnxruntime(model, x), module(x), atol=1e-4, rtol=0)


def _fused_tail(activation: str, transposed: bool) -> Graph:
    """One conv carrying every epilogue stage: activation, shuffle, skip."""
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(0, 0.2, (4, 16, 4, 4) if transposed else (16, 4, 3, 3)),
              "b": rng.normal(0, 0.1, 16), "slope": rng.uniform(0, 0.3, 16)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    attrs = {"weight": "w", "bias": "b", "stride": (1, 1), "padding": (1, 1),
             "dilation": (1, 1), "groups": 1, "activation": activation,
             "activation_param": {"prelu": "slope", "leaky_relu": 0.2}.get(activation),
             "pixel_shuffle": 2, "skip_resize": "bicubic"}
    if transposed:  # x2 up by the transposed conv, x2 more by the shuffle: x4 skip
        attrs.update(stride=(2, 2), output_padding=(0, 0))
    op = "conv_transpose2d" if transposed else "conv2d"
    return Graph("x", 4, "y", [Node(op, ["x", "x"], "y", attrs, "tail")], params)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("activation", ["relu", "prelu", "leaky_relu", "tanh", "sigmoid", "silu"])
def test_every_epilogue_stage_exports_to_equivalent_onnx_ops(activation, transposed, tmp_path):
    graph = _fused_tail(activation, transposed)
    x = _input(4)
    model = export_onnx(graph, tmp_path / "tail.onnx")
    with torch.no_grad():
        expected = run_graph(graph, x)
        torch.testing.assert_close(_onnxruntime(model, x), expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(run_graph(import_onnx(model), x), expected, atol=1e-5, rtol=0)


# -- hand-built ONNX models, checked against onnxruntime ------------------------------------
def _model(nodes, initializers=(), channels=4, opset=17, inputs=None, outputs=None):
    inputs = inputs or [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["n", channels, "h", "w"])]
    outputs = outputs or [_unknown_shape("y")]
    graph = helper.make_graph(
        nodes, "test", inputs, outputs,
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()],
    )
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets,
                             ir_version=helper.find_min_ir_version_for(opsets))


def _unknown_shape(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", "c", "h", "w"])


def _weights(*shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, shape).astype(np.float32)


def _assert_matches_onnxruntime(model, channels=4, h=9, w=7):
    x = _input(channels, h, w)
    with torch.no_grad():
        got = run_graph(import_onnx(model), x)
    torch.testing.assert_close(got, _onnxruntime(model, x), atol=1e-5, rtol=0)


def test_dcr_depth_to_space_after_a_conv_becomes_pixel_shuffle():
    model = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=2, mode="DCR")],
        {"w": _weights(12, 4, 3, 3), "b": _weights(12)},
    )
    graph = import_onnx(model)
    assert [n.op for n in graph.nodes] == ["conv2d", "pixel_shuffle"]
    _assert_matches_onnxruntime(model)


def test_dcr_depth_to_space_with_channels_not_divisible_is_rejected():
    model = _model(
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=2, mode="DCR")],
        {"w": _weights(13, 4, 1, 1)},
    )
    with pytest.raises(GraphError, match="13 channels"):
        import_onnx(model)


def test_dcr_depth_to_space_without_a_conv_before_it_is_rejected():
    model = _model([helper.make_node("Relu", ["x"], ["r"]),
                    helper.make_node("DepthToSpace", ["r"], ["y"], blocksize=2)])
    with pytest.raises(GraphError, match="DCR"):
        import_onnx(model)


@pytest.mark.parametrize(
    "attrs",
    [
        {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
         "nearest_mode": "round_prefer_floor"},
        {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
         "nearest_mode": "floor"},
        {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
        {"mode": "cubic", "coordinate_transformation_mode": "half_pixel",
         "cubic_coeff_a": -0.75},
    ],
    ids=lambda attrs: f"{attrs['mode']}-{attrs['coordinate_transformation_mode']}",
)
@pytest.mark.parametrize("factor", [2, 3])
def test_resize_variants_equal_to_torch_interpolate_import(attrs, factor):
    model = _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)],
                   {"scales": np.array([1, 1, factor, factor], np.float32)})
    _assert_matches_onnxruntime(model)


@pytest.mark.parametrize(
    "attrs,scales",
    [
        ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2, 2]),
        ({"mode": "cubic", "cubic_coeff_a": -0.5}, [1, 1, 2, 2]),
        ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 3, 3]),
        ({"mode": "linear"}, [1, 1, 1.5, 1.5]),
        ({"mode": "linear"}, [1, 1, 2, 3]),
    ],
    ids=["align_corners", "cubic_a", "nearest_round", "fractional", "anisotropic"],
)
def test_resize_that_torch_interpolate_cannot_reproduce_is_rejected(attrs, scales):
    model = _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)],
                   {"scales": np.array(scales, np.float32)})
    with pytest.raises(GraphError, match="Resize"):
        import_onnx(model)


def test_arithmetic_with_constants_and_tensors_imports():
    """Sub both ways, Div by a constant, Clip with one bound, a pooled gate multiplied first."""
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Constant", [], ["two"], value_float=2.0),
        helper.make_node("Div", ["centred", "two"], ["halved"]),
        helper.make_node("Sub", ["one", "halved"], ["flipped"]),
        helper.make_node("GlobalAveragePool", ["flipped"], ["pooled"]),
        helper.make_node("Sigmoid", ["pooled"], ["gate"]),
        helper.make_node("Mul", ["gate", "flipped"], ["gated"]),
        helper.make_node("Sub", ["gated", "x"], ["difference"]),
        helper.make_node("Identity", ["high"], ["high_alias"]),
        helper.make_node("Clip", ["difference", "", "high_alias"], ["y"]),
    ]
    model = _model(nodes, {"mean": np.arange(4, dtype=np.float32).reshape(4, 1, 1) / 8,
                           "one": np.float32(1.0), "high": np.float32(0.3)})
    _assert_matches_onnxruntime(model)


# -- errors -------------------------------------------------------------------------------
def _saved(model, tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_unknown_op_is_rejected_naming_the_node():
    model = _model([helper.make_node("HardSwish", ["x"], ["y"], name="odd_activation")])
    with pytest.raises(GraphError, match="odd_activation.*HardSwish"):
        import_onnx(model)


def test_truncated_file_is_rejected(tmp_path):
    module, channels = build_case("conv_bn_relu")
    export_onnx(capture(module, channels), tmp_path / "full.onnx")
    data = (tmp_path / "full.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(GraphError, match="ONNX"):
        import_onnx(tmp_path / "cut.onnx")


def test_random_bytes_are_rejected(tmp_path):
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(GraphError, match="ONNX"):
        import_onnx(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        import_onnx(tmp_path / "absent.onnx")


def _conv_model(weight, bias=None):
    inputs = ["x", "w"] + (["b"] if bias is not None else [])
    initializers = {"w": weight} | ({"b": bias} if bias is not None else {})
    return _model([helper.make_node("Conv", inputs, ["y"], name="conv")], initializers)


@pytest.mark.parametrize(
    "model,message",
    [
        (lambda: _conv_model(_weights(8, 4, 3)), "4-D"),
        (lambda: _conv_model(_weights(8, 4, 1, 1), _weights(7)), "bias has shape"),
        (lambda: _conv_model(np.ones((8, 4, 1, 1), np.int64)), "not float"),
        (lambda: _conv_model(_weights(8, 3, 1, 1)), "input channels"),
    ],
    ids=["weight_rank", "bias_length", "integer_weight", "channel_mismatch"],
)
def test_bad_initializer_is_rejected_naming_the_node(model, message):
    with pytest.raises(GraphError, match=message):
        import_onnx(model())


def test_initializer_with_too_few_bytes_is_rejected(tmp_path):
    model = _conv_model(_weights(8, 4, 1, 1))
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    with pytest.raises(GraphError, match=r"\bw\b.*too small"):
        import_onnx(_saved(model, tmp_path))


def test_dynamic_channel_dimension_is_rejected():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "c", "h", "w"])
    with pytest.raises(GraphError, match="dynamic channel"):
        import_onnx(_model([helper.make_node("Relu", ["x"], ["y"])], inputs=[x]))


def test_more_than_one_input_or_output_is_rejected():
    two_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8, 8])
                  for n in ("x", "z")]
    with pytest.raises(GraphError, match="one input and one output"):
        import_onnx(_model([helper.make_node("Add", ["x", "z"], ["y"])], inputs=two_inputs))
    two_outputs = [_unknown_shape("y"), _unknown_shape("r")]
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Tanh", ["x"], ["y"])]
    with pytest.raises(GraphError, match="one input and one output"):
        import_onnx(_model(nodes, outputs=two_outputs))


def test_old_opset_is_rejected():
    with pytest.raises(GraphError, match="opset 11"):
        import_onnx(_model([helper.make_node("Relu", ["x"], ["y"])], opset=11))


@pytest.mark.parametrize(
    "shape,message",
    [((4,), "along the width"), ((3, 1, 1), "shape \\(3,\\)"), ((1, 4, 2, 1), "per-channel")],
    ids=["width_vector", "wrong_channel_count", "spatial"],
)
def test_constant_that_is_not_per_channel_is_rejected(shape, message):
    model = _model([helper.make_node("Add", ["x", "c"], ["y"], name="shift")],
                   {"c": np.ones(shape, np.float32)})
    with pytest.raises(GraphError, match=message):
        import_onnx(model)


def _single_node_model(node, initializers, out_channels=3):
    return helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, out_channels, None, None])],
        initializers), opset_imports=[helper.make_opsetid("", 17)])


def test_a_slice_that_crops_is_refused():
    ints = {name: numpy_helper.from_array(np.array(v, np.int64), name)
            for name, v in {"starts": [0], "ends": [4], "axes": [2]}.items()}
    model = _single_node_model(
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"]), list(ints.values()))
    with pytest.raises(GraphError, match="cuts the tensor"):
        import_onnx(model)


def test_a_view_that_is_not_4d_is_refused_where_it_is_read():
    shape = numpy_helper.from_array(np.array([0, 3, -1], np.int64), "shape")
    model = _single_node_model(helper.make_node("Reshape", ["x", "shape"], ["y"]), [shape])
    with pytest.raises(GraphError, match="is a 3-D view"):
        import_onnx(model)


class _PaddedConv(torch.nn.Module):
    """ZeroPad2d (or F.pad) then an unpadded conv: what torch.onnx writes as Pad + Conv."""

    def __init__(self, pad, padding=0, mode="constant"):
        super().__init__()
        self.pad, self.mode = pad, mode
        self.conv = torch.nn.Conv2d(3, 5, 3, padding=padding)

    def forward(self, x):
        return self.conv(torch.nn.functional.pad(x, self.pad, mode=self.mode))


@pytest.mark.parametrize(("pad", "padding"), [((1, 1, 1, 1), 0), ((0, 0, 1, 1), (0, 1)),
                                              ((1, 1, 0, 0), (1, 0))])
def test_a_zero_pad_before_a_conv_becomes_its_padding(pad, padding, tmp_path):
    torch.manual_seed(0)
    module = _PaddedConv(pad, padding).eval()
    _torch_export(module, 3, tmp_path / "padded.onnx")
    assert "Pad" in {n.op_type for n in onnx.load(str(tmp_path / "padded.onnx")).graph.node}
    graph = import_onnx(tmp_path / "padded.onnx")
    assert [n.op for n in graph.nodes] == ["conv2d"]
    x = _input(3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(run_graph(graph, x), _onnxruntime(tmp_path / "padded.onnx", x),
                                   atol=1e-5, rtol=0)
        got = Engine(graph, "cpu").run(x.permute(0, 2, 3, 1).numpy())
    torch.testing.assert_close(torch.from_numpy(got), module(x).permute(0, 2, 3, 1),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize(("module", "message"), [
    (_PaddedConv((1, 1, 1, 1), mode="reflect"), "Pad mode 'reflect' is not supported"),
    (_PaddedConv((1, 0, 1, 0)), "asymmetric pads"),
])
def test_a_pad_fastsr_cannot_fold_is_refused_saying_why(module, message, tmp_path):
    _torch_export(module.eval(), 3, tmp_path / "padded.onnx")
    with pytest.raises(GraphError, match=message):
        import_onnx(tmp_path / "padded.onnx")


def test_a_pad_read_by_anything_but_a_conv_is_refused():
    model = _model(
        [helper.make_node("Pad", ["x", "pads"], ["p"]), helper.make_node("Relu", ["p"], ["y"])],
        {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)},
    )
    with pytest.raises(GraphError, match="reads a Pad's output"):
        import_onnx(model)
    nonzero = _model(
        [helper.make_node("Pad", ["x", "pads", "value"], ["p"]),
         helper.make_node("Conv", ["p", "w"], ["y"])],
        {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "value": np.float32(0.5),
         "w": _weights(4, 4, 3, 3)},
    )
    with pytest.raises(GraphError, match="non-zero constant_value"):
        import_onnx(nonzero)
