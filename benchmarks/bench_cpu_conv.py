"""GFLOP/s of the C++ backend per layer type, as a share of the machine's FMA peak.

Each layer runs as a one-node graph through the cpu backend (the same path a network
takes) and is checked against the reference backend before it is timed. Quick mode
(plain pytest) runs tiny frames once; `--benchmark-only` runs 640x360.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import first_call
from fastsr import _C
from fastsr.backends import get_backend
from fastsr.backends.cpu import ProgramBuilder
from fastsr.engine import make_plan
from fastsr.graph.ir import Graph, Node

# One row per layer type of the zoo: (name, op, cin, cout, kernel, stride, dilation, shuffle);
# cout counts the conv's own channels, before any pixel shuffle.
LAYERS = [
    ("conv3x3 64->64 (body, Winograd)", "conv2d", 64, 64, 3, 1, 1, 1),
    ("conv3x3 3->64 (RGB head)", "conv2d", 3, 64, 3, 1, 1, 1),
    ("conv3x3 64->12 +shuffle2 (RGB x2 tail)", "conv2d", 64, 12, 3, 1, 1, 2),
    ("conv3x3 64->48 +shuffle4 (RGB x4 tail)", "conv2d", 64, 48, 3, 1, 1, 4),
    ("conv3x3 24->24 (fast model body)", "conv2d", 24, 24, 3, 1, 1, 1),
    ("conv3x3 16->16 (fast model body)", "conv2d", 16, 16, 3, 1, 1, 1),
    ("conv5x5 1->56 (FSRCNN feature)", "conv2d", 1, 56, 5, 1, 1, 1),
    ("conv1x1 56->12 (FSRCNN shrink)", "conv2d", 56, 12, 1, 1, 1, 1),
    ("conv3x3 12->12 (FSRCNN body)", "conv2d", 12, 12, 3, 1, 1, 1),
    ("conv3x3 64->64 dilation 2", "conv2d", 64, 64, 3, 1, 2, 1),
    ("conv6x6 stride 2 32->32 (back-projection down)", "conv2d", 32, 32, 6, 2, 1, 1),
    ("deconv9x9 x2 56->1 (FSRCNN tail)", "conv_transpose2d", 56, 1, 9, 2, 1, 1),
    ("deconv6x6 x2 32->32 (back-projection up)", "conv_transpose2d", 32, 32, 6, 2, 1, 1),
]
SIZE = {"quick": (24, 32), "full": (360, 640)}  # LR height, width


@pytest.fixture(scope="session")
def peak(threads) -> float:
    """Best of three: the host is shared, so one reading can be low."""
    return max(_C.fma_peak_gflops(threads) for _ in range(3))


def layer_graph(op, cin, cout, k, stride, dilation, shuffle) -> Graph:
    rng = np.random.default_rng(0)
    shape = (cout, cin, k, k) if op == "conv2d" else (cin, cout, k, k)
    weight = (rng.standard_normal(shape) / np.sqrt(cin * k * k)).astype(np.float32)
    bias = rng.standard_normal(shape[0] if op == "conv2d" else cout).astype(np.float32) * 0.1
    if op == "conv2d":
        pad = (k - stride) // 2 if stride > 1 else dilation * (k // 2)
        attrs = {
            "stride": (stride, stride),
            "padding": (pad, pad),
            "dilation": (dilation,) * 2,
            "groups": 1,
            "activation": "relu",
            "pixel_shuffle": shuffle,
        }
    else:
        pad = (k - stride + 1) // 2  # output = input * stride exactly
        extra = stride - k + 2 * pad
        attrs = {
            "stride": (stride, stride),
            "padding": (pad, pad),
            "dilation": (1, 1),
            "output_padding": (extra, extra),
            "groups": 1,
        }
    node = Node(op, ["x"], "y", {"weight": "w", "bias": "b", **attrs}, name=op)
    return Graph("x", cin, "y", [node], {"w": weight, "b": bias})


def layer_gflop(op, cin, cout, k, stride, shuffle, h, w) -> float:
    """Direct-convolution FLOPs; a transposed conv is counted on its input pixels."""
    out_pixels = h * w if op == "conv_transpose2d" else (h // stride) * (w // stride)
    return 2 * cin * cout * k * k * out_pixels / 1e9


def test_fma_peak(benchmark, threads, peak):
    """The yardstick: FMA chains in registers on `threads` threads."""
    benchmark.group = "cpu fma peak"
    benchmark.extra_info.update(kind="fma_peak", threads=threads, gflops=peak, simd=_C.simd_level())
    benchmark.pedantic(_C.fma_peak_gflops, args=(threads, 0.05), rounds=1, iterations=1)


@pytest.mark.parametrize("layer", LAYERS, ids=[row[0] for row in LAYERS])
def test_layer_gflops(benchmark, timed, quick, threads, peak, layer):
    name, op, cin, cout, k, stride, dilation, shuffle = layer
    h, w = SIZE["quick" if quick else "full"]
    graph = layer_graph(op, cin, cout, k, stride, dilation, shuffle)
    plan = make_plan(graph, 1, h, w)
    program = ProgramBuilder(graph, plan, threads).program
    x = torch.rand(1, h, w, cin, generator=torch.Generator().manual_seed(1))
    got, first = first_call(program.run, x.numpy())
    expected = get_backend("reference").compile(graph, plan).run(x).numpy()
    max_err = float(np.abs(got - expected).max())
    assert max_err <= 1e-4 * max(1.0, float(np.abs(expected).max())), f"{name}: err {max_err}"

    # The layer alone: its step on the buffers the first call filled, no frame copies.
    timed(lambda _: program.run_steps(), None, first)
    gflop = layer_gflop(op, cin, cout, k, stride, shuffle, h, w)
    gflops = gflop / benchmark.stats.stats.median
    benchmark.group = f"cpu layers {w}x{h}"
    benchmark.extra_info.update(
        kind="cpu_layer",
        layer=name,
        threads=threads,
        gflop=gflop,
        gflops=gflops,
        percent_of_peak=100 * gflops / peak,
        fma_peak_gflops=peak,
        simd=_C.simd_level(),
        max_err=max_err,
    )


def test_direct_conv3x3_64_gflops(benchmark, timed, quick, threads, peak):
    """The direct kernel on the body shape (the network runs it as Winograd)."""
    h, w = SIZE["quick" if quick else "full"]
    rng = np.random.default_rng(2)
    x = rng.random((1, h, w, 64), dtype=np.float32)
    weight = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    program = _C.Program(threads)
    xin = program.view(program.add_buffer(1, h, w, 64, 1), 0, 64)
    out = program.view(program.add_buffer(1, h, w, 64), 0, 64)
    program.set_input(xin)
    program.set_output(out)
    program.conv2d(xin, out, weight, pad_top=1, pad_left=1, activation="relu", algorithm="direct")
    got, first = first_call(program.run, x)
    expected = torch.relu(
        torch.nn.functional.conv2d(
            torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(weight), padding=1
        )
    )
    max_err = float(np.abs(got - expected.permute(0, 2, 3, 1).numpy()).max())
    assert max_err <= 1e-4, f"direct conv: err {max_err}"

    timed(lambda _: program.run_steps(), None, first)
    gflop = 2 * 64 * 64 * 9 * h * w / 1e9
    gflops = gflop / benchmark.stats.stats.median
    benchmark.group = f"cpu layers {w}x{h}"
    benchmark.extra_info.update(
        kind="cpu_layer",
        layer="conv3x3 64->64 (body, direct kernel)",
        threads=threads,
        gflop=gflop,
        gflops=gflops,
        percent_of_peak=100 * gflops / peak,
        fma_peak_gflops=peak,
        simd=_C.simd_level(),
        max_err=max_err,
    )
