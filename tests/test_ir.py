"""Graph validation and shape binding: malformed graphs fail with messages naming the node."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from fastsr.graph.ir import Graph, GraphError, Node, TensorShape


def _conv_graph(weight_shape=(8, 3, 3, 3), padding=(1, 1), stride=(1, 1), bias_len=8):
    params = {"w": np.zeros(weight_shape, np.float32), "b": np.zeros(bias_len, np.float32)}
    conv = Node("conv2d", ["x"], "y", {"weight": "w", "bias": "b", "stride": stride,
                                      "padding": padding, "dilation": (1, 1), "groups": 1},
                name="body.conv")
    return Graph("x", 3, "y", [conv], params)


def test_well_formed_graph_binds_concrete_shapes():
    graph = _conv_graph()
    graph.validate()
    assert graph.shapes()["y"] == TensorShape(8, Fraction(1))
    assert graph.shapes()["y"].bind(37, 53) == (8, 37, 53)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(weight_shape=(8, 4, 3, 3)), "expects 4 input channels"),
        (dict(padding=(0, 0)), "does not keep the spatial size"),
        (dict(bias_len=7), "bias has shape"),
        (dict(stride=(2, 2), padding=(1, 1)), "kernel - 2\\*padding == stride"),
    ],
)
def test_bad_conv_is_rejected_naming_the_node(change, message):
    with pytest.raises(GraphError, match=message) as error:
        _conv_graph(**change).validate()
    assert "body.conv" in str(error.value)


def test_unknown_op_and_missing_parameter_are_rejected():
    graph = _conv_graph()
    graph.nodes.append(Node("softmax", ["y"], "z", {}, name="head.softmax"))
    with pytest.raises(GraphError, match="head.softmax: unsupported op 'softmax'"):
        graph.validate()
    graph = _conv_graph()
    del graph.params["b"]
    with pytest.raises(GraphError, match="parameter 'b' is missing"):
        graph.validate()


def test_strided_graph_refuses_input_sizes_it_cannot_divide():
    graph = _conv_graph(weight_shape=(8, 3, 4, 4), padding=(1, 1), stride=(2, 2))
    graph.validate()
    assert graph.shapes()["y"].bind(8, 6) == (8, 4, 3)
    with pytest.raises(ValueError, match="multiple of 2"):
        graph.shapes()["y"].bind(7, 6)


def test_the_cpu_kernels_parse_exactly_the_ir_vocabulary():
    from fastsr.graph import ir

    _C = pytest.importorskip("fastsr._C", reason="the C++ extension is not built")
    words = _C.vocabulary()
    assert sorted(words["conv_activations"]) == sorted(ir.EPILOGUE_ACTIVATIONS)
    assert sorted(words["pointwise"]) == sorted(ir.ACTIVATIONS)
    assert sorted(words["resize_modes"]) == sorted(ir.RESIZE_MODES)
    assert words["cubic_a"] == ir.CUBIC_A
