"""Kernel-level checks of fastsr._C against torch ops: every SIMD level, the conv
epilogue, odd shapes, strided inputs, and the errors the binding raises.

Whole graphs are checked by the shared harness (tests/test_backends.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from simd_levels import AVAILABLE, LEVELS

from fastsr import _C
from fastsr.backends.cpu import conv_spec
from fastsr.graph.ir import Graph, Node


def rng_array(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).contiguous().numpy()


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def single_conv(
    x,
    weight,
    bias=None,
    stride=1,
    pad=None,
    dilation=1,
    shuffle=1,
    skip=False,
    border=None,
    **epilogue,
):
    """A Program with one conv; returns (program, runner taking x and optional skip)."""
    n, h, w, c = x.shape
    k = weight.shape[2]
    pad = dilation * (k // 2) if pad is None else pad
    oh = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    cout = weight.shape[0] // shuffle**2
    p = _C.Program(2)
    # With a skip, input and skip share one buffer (channel slices) so one run feeds both.
    extra = cout if skip else 0
    buf = p.add_buffer(n, h, w, c + extra, pad if border is None else border)
    xin = p.view(buf, 0, c)
    out = p.view(p.add_buffer(n, oh * shuffle, ow * shuffle, cout), 0, cout)
    skip_view = None
    if skip:
        assert (oh * shuffle, ow * shuffle) == (h, w)
        skip_view = p.view(buf, c, cout)
    p.set_input(p.view(buf, 0, c + extra))
    p.set_output(out)
    p.conv2d(
        xin,
        out,
        weight,
        bias,
        stride=stride,
        pad_top=pad,
        pad_left=pad,
        dilation=dilation,
        shuffle=shuffle,
        skip=skip_view,
        **epilogue,
    )
    return p


CONV_SHAPES = [  # (cin, cout, k, stride, dilation, h, w)
    (64, 64, 3, 1, 1, 9, 29),  # full vectors, remainder tiles
    (3, 64, 3, 1, 1, 7, 13),  # first RGB layer
    (1, 56, 5, 1, 1, 6, 11),  # FSRCNN feature layer
    (12, 12, 3, 1, 1, 5, 17),  # FSRCNN body
    (32, 48, 3, 1, 1, 4, 7),  # x4 tail width
    (8, 5, 3, 1, 2, 9, 10),  # dilation 2, odd channel count
    (3, 4, 9, 1, 1, 11, 12),  # 9x9
    (8, 20, 6, 2, 1, 12, 14),  # back-projection down conv
    (16, 24, 1, 1, 1, 3, 5),  # 1x1
]


@pytest.mark.parametrize("cin,cout,k,stride,dilation,h,w", CONV_SHAPES)
def test_conv_matches_torch(simd, cin, cout, k, stride, dilation, h, w):
    x = rng_array((2, h, w, cin), 1)
    weight = rng_array((cout, cin, k, k), 2, 0.2)
    bias = rng_array((cout,), 3)
    pad = (dilation * (k - 1) - stride + 1) // 2 if stride > 1 else dilation * (k // 2)
    got = single_conv(x, weight, bias, stride, pad, dilation, algorithm="direct").run(x)
    expected = F.conv2d(
        nchw(x), torch.from_numpy(weight), torch.from_numpy(bias), stride, pad, dilation
    )
    np.testing.assert_allclose(got, nhwc(expected), atol=2e-5, rtol=0)


def test_avx512_packs_a_conv_for_avx2_where_padded_lanes_cost_more():
    """A 24-channel conv in 16-lane vectors does 32 channels of work, in AVX2's 8-lane ones
    24: AVX-512 wins only where its FMAs outrun AVX2's by more than a third (a Xeon's, 2x),
    not where a 512-bit FMA is two 256-bit halves (Zen 4). The rates measured apart here."""
    if "avx512" not in AVAILABLE:
        pytest.skip("avx512 not supported by this CPU")
    before = _C.simd_level()
    try:
        rates = {}
        for level in ("avx512", "avx2"):
            _C.set_simd_level(level)
            rates[level] = max(_C.fma_peak_gflops(1, 0.05) for _ in range(3))
        _C.set_simd_level("avx512")
        assert _C.conv_packing_level(64) == "avx512"  # whole vectors
        assert _C.conv_packing_level(8) == "avx2"  # narrow
        wide_pays = rates["avx512"] / rates["avx2"] > 4 / 3
        assert _C.conv_packing_level(24) == ("avx512" if wide_pays else "avx2")
        with pytest.raises(ValueError, match="cout"):
            _C.conv_packing_level(0)
    finally:
        _C.set_simd_level(before)


@pytest.mark.parametrize("activation", ["prelu", "tanh", "sigmoid"])
@pytest.mark.parametrize("n,h,w,cin,cout", [(1, 37, 53, 64, 64), (2, 5, 6, 32, 48)])
def test_winograd_matches_torch_with_epilogue(simd, n, h, w, cin, cout, activation):
    x = rng_array((n, h, w, cin + cout), 22)
    weight = rng_array((cout, cin, 3, 3), 23, 1 / np.sqrt(9 * cin))
    bias, slope = rng_array((cout,), 24), rng_array((cout,), 25, 0.3)
    p = single_conv(
        x[..., :cin],
        weight,
        bias,
        skip=True,
        activation=activation,
        slope=slope,
        algorithm="winograd",
    )
    y = F.conv2d(nchw(x[..., :cin]), torch.from_numpy(weight), torch.from_numpy(bias), padding=1)
    if activation == "prelu":
        y = F.prelu(y, torch.from_numpy(slope))
    else:
        y = getattr(torch, activation)(y)
    expected = nhwc(y) + x[..., cin:]
    # F(4x4, 3x3) rounds differently from the direct sum: bound the error relative to size.
    bound = 1e-5 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(p.run(x), expected, atol=bound, rtol=0)


def test_winograd_is_refused_where_it_does_not_fit():
    x = rng_array((1, 6, 6, 16))
    with pytest.raises(ValueError, match="Winograd"):
        single_conv(x, rng_array((16, 16, 3, 3)), algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm"):
        single_conv(x, rng_array((16, 16, 3, 3)), algorithm="fft")


@pytest.mark.parametrize("activation", ["relu", "prelu", "leaky_relu", "tanh", "sigmoid", "silu"])
@pytest.mark.parametrize("shuffle", [1, 2])
def test_conv_epilogue_matches_torch(simd, activation, shuffle):
    cin, cout, h, w = 16, 12, 6, 9
    x = rng_array((1, h, w, cin), 4)
    weight = rng_array((cout * shuffle**2, cin, 3, 3), 5, 0.2)
    bias = rng_array((cout * shuffle**2,), 6)
    slope = rng_array((cout * shuffle**2,), 7, 0.3)
    p = _C.Program(2)
    buf = p.add_buffer(1, h, w, cin, 1)
    out = p.view(p.add_buffer(1, h * shuffle, w * shuffle, cout), 0, cout)
    skip_buf = p.add_buffer(1, h * shuffle, w * shuffle, cout)
    p.set_input(p.view(buf, 0, cin))
    p.set_output(out)
    # Fill the skip with a constant through an affine step on a zero buffer.
    p.affine(
        p.view(skip_buf, 0, cout),
        np.zeros(cout, np.float32),
        np.linspace(-1, 1, cout).astype(np.float32),
        p.view(skip_buf, 0, cout),
    )
    p.conv2d(
        p.view(buf, 0, cin),
        out,
        weight,
        bias,
        pad_top=1,
        pad_left=1,
        activation=activation,
        slope=slope,
        alpha=0.1,
        shuffle=shuffle,
        skip=p.view(skip_buf, 0, cout),
    )
    got = p.run(x)

    y = F.conv2d(nchw(x), torch.from_numpy(weight), torch.from_numpy(bias), padding=1)
    y = {
        "relu": torch.relu,
        "prelu": lambda t: F.prelu(t, torch.from_numpy(slope)),
        "leaky_relu": lambda t: F.leaky_relu(t, 0.1),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "silu": F.silu,
    }[activation](y)
    y = F.pixel_shuffle(y, shuffle) + torch.linspace(-1, 1, cout).view(1, -1, 1, 1)
    np.testing.assert_allclose(got, nhwc(y), atol=2e-5, rtol=0)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_tanh_and_sigmoid_within_2e_7_over_the_float_range(simd, activation):
    """The vector tanh / sigmoid, through an identity 1x1 conv's epilogue and the pointwise
    step: dense over [-30, 30], extremes, signed zeros; NaN stays NaN."""
    c = 20  # a full and a partial vector at every SIMD width
    extremes = [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 3e38, -3e38]
    values = np.concatenate([np.linspace(-30, 30, 100_000), extremes]).astype(np.float32)
    x = np.resize(values, 201 * 25 * c).reshape(1, 201, 25, c)
    x[0, -1, -1] = np.nan  # a whole pixel: the conv mixes channels (0 * NaN)
    conv = single_conv(x, np.eye(c, dtype=np.float32).reshape(c, c, 1, 1), activation=activation)
    p = _C.Program(2)
    xin = p.view(p.add_buffer(*x.shape), 0, c)
    out = p.view(p.add_buffer(*x.shape), 0, c)
    p.set_input(xin), p.set_output(out)
    p.activation(xin, out, activation)

    expected = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation](
        torch.from_numpy(x).double()
    ).numpy()
    lo = -1.0 if activation == "tanh" else 0.0
    for got in (conv.run(x), p.run(x)):
        nan = np.isnan(expected)
        np.testing.assert_array_equal(np.isnan(got), nan)
        assert np.abs(got[~nan] - expected[~nan]).max() <= 2e-7
        assert lo <= got[~nan].min() and got[~nan].max() <= 1.0
        if activation == "tanh":
            assert np.all(got[x == 0] == 0)


def test_conv_skip_read_from_a_channel_slice(simd):
    x = rng_array((1, 7, 11, 8 + 8), 8)
    weight = rng_array((8, 8, 3, 3), 9, 0.2)
    got = single_conv(x[..., :8], weight, skip=True, activation="relu").run(x)
    expected = torch.relu(F.conv2d(nchw(x[..., :8]), torch.from_numpy(weight), padding=1))
    np.testing.assert_allclose(got, nhwc(expected) + x[..., 8:], atol=2e-5, rtol=0)


@pytest.mark.parametrize(
    "k,stride,padding,output_padding",
    [(9, 2, 4, 1), (9, 3, 4, 2), (9, 4, 4, 3), (6, 2, 2, 0), (4, 2, 1, 0)],
)
def test_transposed_conv_as_subpixel_conv_matches_torch(simd, k, stride, padding, output_padding):
    cin, cout, h, w = 6, 3, 5, 7
    weight = rng_array((cin, cout, k, k), 10, 0.2)
    bias = rng_array((cout,), 11)
    graph = Graph("x", cin, "y", [], {"w": weight, "b": bias})
    node = Node(
        "conv_transpose2d",
        ["x"],
        "y",
        {
            "weight": "w",
            "bias": "b",
            "stride": (stride, stride),
            "padding": (padding, padding),
            "output_padding": (output_padding, output_padding),
            "dilation": (1, 1),
            "groups": 1,
        },
    )
    spec = conv_spec(graph, node)
    x = rng_array((1, h, w, cin), 12)
    p = _C.Program(2)
    border = max(spec.pad_top, spec.weight.shape[2] - 1 - spec.pad_top)
    xin = p.view(p.add_buffer(1, h, w, cin, border), 0, cin)
    out = p.view(p.add_buffer(1, h * stride, w * stride, cout), 0, cout)
    p.set_input(xin), p.set_output(out)
    p.conv2d(
        xin,
        out,
        spec.weight,
        spec.bias,
        pad_top=spec.pad_top,
        pad_left=spec.pad_left,
        shuffle=spec.shuffle,
    )
    expected = F.conv_transpose2d(
        nchw(x), torch.from_numpy(weight), torch.from_numpy(bias), stride, padding, output_padding
    )
    np.testing.assert_allclose(p.run(x), nhwc(expected), atol=2e-5, rtol=0)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("width,c", [(9, 3), (1, 2), (2, 1), (37, 2), (40, 5)])
def test_resize_matches_torch_interpolate(mode, factor, width, c):
    x = rng_array((2, 5, width, c), 13)
    p = _C.Program(2)
    xin = p.view(p.add_buffer(2, 5, width, c), 0, c)
    out = p.view(p.add_buffer(2, 5 * factor, width * factor, c), 0, c)
    p.set_input(xin), p.set_output(out)
    p.resize(xin, out, mode, factor)
    align = None if mode == "nearest" else False
    expected = F.interpolate(nchw(x), scale_factor=factor, mode=mode, align_corners=align)
    np.testing.assert_allclose(p.run(x), nhwc(expected), atol=1e-5, rtol=0)


def test_strided_input_arrays_match_contiguous_ones():
    base = rng_array((1, 8, 20, 12), 14)
    x = base[:, :, ::2, 2:5]  # pixel stride 24 floats, channel slice
    weight = rng_array((4, 3, 3, 3), 15, 0.2)
    p = single_conv(np.ascontiguousarray(x), weight)
    np.testing.assert_array_equal(p.run(x), p.run(np.ascontiguousarray(x)))


def test_threads_do_not_change_results():
    x = rng_array((1, 9, 31, 16), 16)
    weight = rng_array((16, 16, 3, 3), 17, 0.2)
    results = []
    for threads in (1, 2):
        p = _C.Program(threads)
        xin = p.view(p.add_buffer(1, 9, 31, 16, 1), 0, 16)
        out = p.view(p.add_buffer(1, 9, 31, 16), 0, 16)
        p.set_input(xin), p.set_output(out)
        p.conv2d(xin, out, weight, pad_top=1, pad_left=1)
        assert p.threads == threads
        results.append(p.run(x))
    np.testing.assert_array_equal(results[0], results[1])


def python_ran_during(call) -> bool:
    """Whether this thread ran Python while `call` was inside C++ on another thread.

    The other thread flags that it is about to call; this one sleeps briefly (a held GIL
    keeps it asleep until the call returns), then checks whether the call is still going.
    """
    about_to_call, finished = threading.Event(), threading.Event()

    def worker():
        about_to_call.set()
        call()
        finished.set()

    thread = threading.Thread(target=worker)
    thread.start()
    about_to_call.wait()
    time.sleep(0.01)
    ran = not finished.is_set()
    thread.join()
    return ran


def test_run_releases_the_gil():
    x = rng_array((1, 256, 256, 64), 18)  # about 5 GFLOP: far longer than the 10 ms nap
    p = single_conv(x, rng_array((64, 64, 3, 3), 19, 0.1))
    assert python_ran_during(lambda: p.run(x))


def test_an_upscaler_frame_releases_the_gil():
    import fastsr

    upscaler = fastsr.Upscaler(model="fast_x2", backend="cpu", threads=1)
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert python_ran_during(lambda: upscaler(frame))


def test_the_gil_witness_sees_a_call_that_holds_it():
    # sum(range(...)) is one C call that never lets go of the GIL.
    assert not python_ran_during(lambda: sum(range(20_000_000)))


@pytest.mark.parametrize("level", AVAILABLE)
def test_env_var_caps_the_simd_level(level):
    code = "from fastsr import _C; print(_C.simd_level())"
    env = dict(os.environ, FASTSR_SIMD=level)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == level


def test_fma_peak_is_positive():
    assert _C.fma_peak_gflops(1, 0.01) > 0


# -- the binding refuses bad input with Python exceptions ------------------------------------


def test_run_rejects_wrong_dtype_shape_and_layout():
    x = rng_array((1, 4, 5, 3), 20)
    p = single_conv(x, rng_array((2, 3, 3, 3), 21))
    with pytest.raises(TypeError, match="float32"):
        p.run(x.astype(np.float64))
    with pytest.raises(TypeError, match="numpy array"):
        p.run([1.0, 2.0])
    with pytest.raises(ValueError, match="4 dimensions"):
        p.run(x[0])
    with pytest.raises(ValueError, match="shape"):
        p.run(rng_array((1, 4, 6, 3)))
    with pytest.raises(ValueError, match="contiguous"):
        p.run(np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1))  # NCHW memory


def test_conv_rejects_inconsistent_arguments():
    p = _C.Program(1)
    xin = p.view(p.add_buffer(1, 4, 4, 3, 1), 0, 3)
    out = p.view(p.add_buffer(1, 4, 4, 8), 0, 8)
    w = rng_array((8, 3, 3, 3))
    with pytest.raises(ValueError, match="input channels"):
        p.conv2d(xin, out, rng_array((8, 4, 3, 3)), pad_top=1, pad_left=1)
    with pytest.raises(ValueError, match="zero border"):
        p.conv2d(xin, out, rng_array((8, 3, 5, 5)), pad_top=2, pad_left=2)
    with pytest.raises(ValueError, match="4 dimensions"):
        p.conv2d(xin, out, w.reshape(8, 27), pad_top=1, pad_left=1)
    with pytest.raises(TypeError, match="float32"):
        p.conv2d(xin, out, w.astype(np.float16), pad_top=1, pad_left=1)
    with pytest.raises(ValueError, match="bias"):
        p.conv2d(xin, out, w, rng_array((5,)), pad_top=1, pad_left=1)
    with pytest.raises(ValueError, match="activation"):
        p.conv2d(xin, out, w, pad_top=1, pad_left=1, activation="gelu")
    with pytest.raises(ValueError, match="slope"):
        p.conv2d(xin, out, w, pad_top=1, pad_left=1, activation="prelu")
    with pytest.raises(ValueError, match="does not fit"):
        p.conv2d(xin, out, w, pad_top=1, pad_left=1, shuffle=2)
    with pytest.raises(ValueError, match="overlaps"):
        p.conv2d(xin, xin, rng_array((3, 3, 3, 3)), pad_top=1, pad_left=1)


def test_views_are_checked():
    p, other = _C.Program(1), _C.Program(1)
    buf = p.add_buffer(1, 4, 4, 8)
    with pytest.raises(ValueError, match="exceed"):
        p.view(buf, 4, 8)
    with pytest.raises(ValueError, match="no buffer"):
        p.view(7, 0, 1)
    foreign = other.view(other.add_buffer(1, 4, 4, 8), 0, 8)
    with pytest.raises(ValueError, match="belong"):
        p.add(p.view(buf, 0, 8), foreign, p.view(buf, 0, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        p.add(p.view(buf, 0, 8), p.view(buf, 0, 4), p.view(buf, 0, 8))
    with pytest.raises(ValueError, match="no input"):
        p.run(rng_array((1, 4, 4, 8)))
    with pytest.raises(ValueError, match="resize mode"):
        q = _C.Program(1)
        a = q.view(q.add_buffer(1, 2, 2, 1), 0, 1)
        q.resize(a, q.view(q.add_buffer(1, 4, 4, 1), 0, 1), "lanczos", 2)


def test_simd_level_cannot_be_forced_above_the_cpu_or_misspelt():
    with pytest.raises(ValueError, match="expected one of"):
        _C.set_simd_level("sse9")
    for level in set(LEVELS) - set(AVAILABLE):
        with pytest.raises(ValueError, match="not supported"):
            _C.set_simd_level(level)


def test_run_writes_into_a_given_output_array():
    x = rng_array((1, 5, 6, 3), 26)
    p = single_conv(x, rng_array((4, 3, 3, 3), 27))
    expected = p.run(x)
    base = np.zeros((1, 5, 6, 8), np.float32)
    out = base[..., 2:6]  # a channel window: pixel stride 8 floats
    assert p.run(x, out) is out
    np.testing.assert_array_equal(base[..., 2:6], expected)
    with pytest.raises(ValueError, match="out must have shape"):
        p.run(x, np.zeros((1, 5, 6, 5), np.float32))
    frozen = np.zeros((1, 5, 6, 4), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        p.run(x, frozen)
