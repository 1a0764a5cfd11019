"""Each pass on its own: same output on the reference backend, expected node count."""

from __future__ import annotations

import pytest
import torch
from op_cases import build_case

from fastsr.backends.reference import run_graph
from fastsr.graph import passes
from fastsr.graph.from_torch import capture
from fastsr.graph.ir import Graph


def _ops(graph: Graph) -> list[str]:
    return [node.op for node in graph.nodes]


def _same_output(before: Graph, after: Graph, channels: int) -> None:
    x = torch.rand(2, channels, 9, 12)
    with torch.no_grad():
        torch.testing.assert_close(run_graph(after, x), run_graph(before, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "case,chain,expected_ops",
    [
        ("conv_bn_relu", [passes.fold_batchnorm], ["conv2d", "affine", "relu"]),
        ("conv_bn_relu", [passes.fold_batchnorm, passes.fold_affine], ["conv2d", "relu"]),
        (
            "conv_bn_relu",
            [passes.fold_batchnorm, passes.fold_affine, passes.fuse_activation],
            ["conv2d"],
        ),
        ("conv5_prelu_y", [passes.fuse_activation], ["conv2d", "batch_norm", "prelu"]),
        ("pixel_shuffle_alone", [passes.fuse_pixel_shuffle], ["conv2d", "relu", "affine",
                                                              "pixel_shuffle"]),
        ("residual_block", [passes.fuse_residual_add], ["conv2d", "relu", "conv2d", "affine",
                                                        "add"]),
        ("residual_block", [passes.fold_affine, passes.fuse_activation,
                            passes.fuse_residual_add], ["conv2d", "conv2d"]),
        (
            "shuffle_bicubic_skip",
            [passes.fuse_activation, passes.fuse_pixel_shuffle, passes.fuse_global_residual],
            ["conv2d", "conv2d"],
        ),
        ("span_block", [passes.fuse_activation, passes.fuse_gate], ["conv2d"] * 3),
        ("tanh_gate", [passes.fuse_activation, passes.fuse_gate], ["conv2d", "conv2d"]),
        # The gate reads y, the sum another tensor (silu(y + x) + x): nothing to fuse.
        ("silu_gate", [passes.fuse_gate], ["conv2d", "silu", "conv2d", "add", "silu", "add",
                                           "sigmoid", "affine", "mul"]),
        ("channel_attention", [passes.fuse_activation, passes.fuse_mul_add],
         ["conv2d", "global_avg_pool", "conv2d", "conv2d", "mul_add"]),
        ("back_projection", [passes.fuse_activation, passes.fuse_residual_add],
         ["conv_transpose2d", "conv2d", "affine", "add", "conv_transpose2d"]),
    ],
)
def test_pass_keeps_output_and_fuses(case, chain, expected_ops):
    module, channels = build_case(case)
    graph = capture(module, channels)
    rewritten = graph
    for graph_pass in chain:
        rewritten = graph_pass(rewritten)
        rewritten.validate()
    assert _ops(rewritten) == expected_ops
    _same_output(graph, rewritten, channels)


def test_fused_tail_writes_upscaled_image_from_low_resolution_skip():
    module, channels = build_case("shuffle_bicubic_skip")
    tail = passes.optimize(capture(module, channels)).nodes[-1]
    assert tail.epilogue("pixel_shuffle") == 2
    assert tail.epilogue("skip_resize") == "bicubic"
    assert tail.inputs[1] == "x"  # the network input itself, never upscaled in memory


def test_fused_gate_takes_the_block_input_as_skip_and_the_affine_as_scalars():
    module, channels = build_case("span_block")
    tail = passes.optimize(capture(module, channels)).nodes[-1]
    assert tail.inputs[1] == "x"
    assert (tail.epilogue("gate"), tail.epilogue("gate_scale"), tail.epilogue("gate_shift")) == (
        "sigmoid", 1.0, -0.5)


def test_passes_do_not_mutate_their_input():
    module, channels = build_case("conv_bn_relu")
    graph = capture(module, channels)
    ops_before = _ops(graph)
    params_before = {k: v.copy() for k, v in graph.params.items()}
    passes.optimize(graph)
    assert _ops(graph) == ops_before
    for name, value in params_before.items():
        assert (graph.params[name] == value).all()


def test_eliminate_dead_drops_unused_nodes_and_params():
    module, channels = build_case("residual_block")
    graph = capture(module, channels)
    graph.nodes.insert(0, type(graph.nodes[0])("relu", ["x"], "unused", {}, "dangling"))
    cleaned = passes.eliminate_dead(graph)
    assert "unused" not in [node.output for node in cleaned.nodes]
    assert len(cleaned.nodes) == len(graph.nodes) - 1


def test_plan_memory_reuses_buffers_and_never_aliases_live_tensors():
    module, channels = build_case("dense_concat")
    graph = passes.optimize(capture(module, channels))
    slot_of = passes.plan_memory(graph)
    last_use = {n: i for i, node in enumerate(graph.nodes) for n in node.inputs}
    birth = {node.output: i for i, node in enumerate(graph.nodes)}
    for a, slot_a in slot_of.items():
        for b, slot_b in slot_of.items():
            if a < b and slot_a == slot_b:
                # lifetimes [birth, last_use] must not overlap
                assert last_use[a] < birth[b] or last_use[b] < birth[a], (a, b)


def test_plan_memory_needs_only_two_buffers_for_a_chain_of_residual_blocks():
    torch.manual_seed(0)
    blocks = torch.nn.Sequential(*[build_case("residual_block")[0] for _ in range(6)])
    graph = passes.optimize(capture(blocks, 8))
    assert len(graph.nodes) == 12
    # block input, the block's inner activation, and the block output
    assert len(set(passes.plan_memory(graph).values())) == 3
