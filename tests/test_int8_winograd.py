"""int8 Winograd F(2x2, 3x3) (csrc/winograd_int8.h): its integer tap sums bit for bit against
numpy at every int8 family this CPU runs, the whole conv against a numpy float32 reference
of the same algorithm and against the fp32 conv within the quantisation error, the
calibration's tap scales and the program builder's choice of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_int8_kernels import activation_ref, on_portable, quantize_ref

from fastsr import _C
from fastsr.winograd_int8 import (
    AT,
    BT,
    TAP_ZERO,
    G,
    input_taps,
    quantize_taps,
    quantize_winograd_weight,
    tap_requantizers,
)

F32 = np.float32


def taps_u8_ref(q, zero, tap_scale):
    """(16, n, th, tw, c) u8 taps as the kernel rounds them (the Q15 rule)."""
    return quantize_taps(input_taps(q.astype(np.int64) - zero).astype(np.int64), tap_scale)


def tap_sums_ref(taps_u8, wq):
    """int64 sums per tap and out channel: sum_c (v - 128) * w, (16, n, th, tw, cout)."""
    return np.einsum("tnhwc,toc->tnhwo", taps_u8.astype(np.int64) - TAP_ZERO, wq.astype(np.int64))


def untile(y, h, w):
    """(2, 2, n, th, tw, c) output tiles -> n x h x w x c."""
    _, _, n, th, tw, c = y.shape
    return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, 2 * th, 2 * tw, c)[:, :h, :w]


def dequantized_tiles_ref(q, zero, x_scale, wq, w_scale, tap_scale, out_scale=None):
    """The tap sums dequantised per (tap, channel) in float32 (over out_scale if given),
    then A^T m A in the kernel's order ((m0 + m1) + m2, (m1 - m2) - m3): n x h x w x cout."""
    n, h, w, _ = q.shape
    sums = tap_sums_ref(taps_u8_ref(q, zero, tap_scale), wq)
    scale = (F32(x_scale) * np.asarray(tap_scale, F32))[:, None] * w_scale  # (16, cout)
    if out_scale is not None:
        scale = scale * (F32(1) / F32(out_scale))
    m = (sums.astype(F32) * scale[:, None, None, None]).reshape(4, 4, *sums.shape[1:])
    cols = np.stack([(m[0] + m[1]) + m[2], (m[1] - m[2]) - m[3]])  # (2, 4, ...)
    y = np.stack([(cols[:, 0] + cols[:, 1]) + cols[:, 2], (cols[:, 1] - cols[:, 2]) - cols[:, 3]],
                 axis=1)
    return untile(y, h, w)


def winograd_int8_ref(q, zero, x_scale, wq, w_scale, tap_scale, bias, act, slope, alpha):
    """The same algorithm in numpy float32: dequantised tap sums, A^T m A, bias, activation."""
    y = dequantized_tiles_ref(q, zero, x_scale, wq, w_scale, tap_scale)
    return activation_ref(y + bias, act, slope, alpha)


def winograd_int8_u8_ref(q, zero, x_scale, wq, w_scale, tap_scale, bias, act, out_scale,
                         out_zero):
    """A u8 output alone with ReLU or none, as the kernel rounds it: the sums straight to
    the u8 grid (1 / out_scale in the tap scales and the bias), clamped at the zero point
    for ReLU, else at 0, rounded half to even."""
    y = dequantized_tiles_ref(q, zero, x_scale, wq, w_scale, tap_scale, out_scale)
    inv = F32(1) / F32(out_scale)
    v = y + (np.asarray(bias, F32) * inv + F32(out_zero))
    low = F32(out_zero) if act == "relu" else F32(0)
    return np.rint(np.clip(v, low, F32(255))).astype(np.uint8)


def run_winograd_int8(x, wq, w_scale, tap_scale, bias, *, x_scale, x_zero, activation="none",
                      slope=None, alpha=0.0, skip=None, out_q=None, fp32_too=False):
    """One Program: quantize x, the int8 Winograd conv to fp32 (`skip` read from the input
    past x's channels), to u8 (dequantized), or both side by side. (output, family)."""
    n, h, w, cin = x.shape
    cout = wq.shape[1]
    extra = 0 if skip is None else cout
    p = _C.Program(1)
    src = p.add_buffer(n, h, w, cin + extra)
    p.set_input(p.view(src, 0, cin + extra))
    xq = p.byte_view(p.add_byte_buffer(n, h, w, cin, 1, fill=x_zero), 0, cin)
    p.quantize(p.view(src, 0, cin), x_scale, x_zero, xq)
    both = 2 if (out_q and fp32_too) else 1
    result = p.add_buffer(n, h, w, both * cout)
    p.set_output(p.view(result, 0, both * cout))
    skip_view = None
    if skip is not None:
        skip_view = p.view(p.add_buffer(n, h, w, cout), 0, cout)
        p.copy(p.view(src, cin, extra), skip_view)
    args = dict(x_scale=x_scale, x_zero=x_zero, activation=activation, slope=slope, alpha=alpha,
                skip=skip_view)
    target = {}
    if out_q is None or fp32_too:
        target["out"] = p.view(result, 0, cout)
    if out_q is not None:
        yq = p.byte_view(p.add_byte_buffer(n, h, w, cout), 0, cout)
        target.update(out_q=yq, out_scale=out_q[0], out_zero=out_q[1])
    family = p.conv2d_int8_winograd(xq, wq, w_scale, np.asarray(tap_scale, F32), bias, **args,
                                    **target)
    if out_q is not None:
        p.dequantize(yq, *out_q, p.view(result, (both - 1) * cout, cout))
    feed = x if skip is None else np.concatenate([x, skip], axis=3)
    return p.run(np.ascontiguousarray(feed)), family


def expected_family(isa):
    return "avx512vnni" if isa == "amx" else isa  # AMX's Winograd taps run on VNNI


# n, h, w, cin, cout: odd sizes leave a partial last tile row and column; 48 and 80
# channels leave partial vector groups at every family; blocks of tiles span rows.
SHAPES = [(1, 5, 7, 32, 32), (2, 6, 9, 48, 64), (1, 9, 14, 64, 80), (1, 1, 1, 32, 48),
          (1, 13, 41, 64, 64)]


@pytest.mark.parametrize("n,h,w,cin,cout", SHAPES)
@pytest.mark.parametrize("tap,x_scale", [(8.0, 1 / 8), (0.625, 1.6)])  # shift 0 and 1
def test_tap_sums_are_exact_integers_at_every_family(int8_isa, n, h, w, cin, cout, tap,
                                                     x_scale):
    """x_scale times the tap scale is 1 in float32 and unit weight scales make every
    dequantisation exact: with no bias the output is A^T M A of the integer tap sums M
    (|y| < 2^24, exact in float32), compared exactly; extreme inputs saturate some u8 taps."""
    rng = np.random.default_rng(h * w + cin)
    zero = 121
    q = rng.integers(0, 256, (n, h, w, cin))
    q[:, ::3, ::2] = 255
    x = ((q - zero) * F32(x_scale)).astype(F32)
    wq = rng.integers(-63, 64, (16, cout, cin)).astype(np.int8)
    tap_scale = np.full(16, tap, F32)
    assert F32(x_scale) * F32(tap) == 1
    ones, zeros = np.ones((16, cout), F32), np.zeros(cout, F32)
    got, family = run_winograd_int8(x, wq, ones, tap_scale, zeros, x_scale=x_scale, x_zero=zero)
    assert family == expected_family(int8_isa)
    sums = tap_sums_ref(taps_u8_ref(q, zero, tap_scale), wq)
    at = AT.astype(np.int64)
    y = np.einsum("ia,abntwc,jb->ijntwc", at, sums.reshape(4, 4, *sums.shape[1:]), at)
    assert np.abs(y).max() < 2**24
    np.testing.assert_array_equal(got, untile(y, h, w).astype(F32))
    portable, _ = on_portable(
        int8_isa, lambda: run_winograd_int8(x, wq, ones, tap_scale, zeros, x_scale=x_scale,
                                            x_zero=zero))
    np.testing.assert_array_equal(got, portable)


def random_case(seed, n, h, w, cin, cout):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(F32)
    wq = rng.integers(-63, 64, (16, cout, cin)).astype(np.int8)
    w_scale = (rng.random((16, cout)) * 0.01 + 0.001).astype(F32)
    tap_scale = (rng.random(16) * 0.5 + 0.3).astype(F32) * 4
    bias = rng.standard_normal(cout).astype(F32)
    slope = (rng.random(cout) * 0.5).astype(F32)
    skip = rng.standard_normal((n, h, w, cout)).astype(F32)
    return x, wq, w_scale, tap_scale, bias, slope, skip


@pytest.mark.parametrize("activation", ["none", "relu", "prelu", "leaky_relu"])
@pytest.mark.parametrize("with_skip", [False, True])
@pytest.mark.parametrize("output", ["fp32", "u8", "both"])
def test_winograd_int8_matches_the_numpy_reference(int8_isa, activation, with_skip, output):
    n, h, w, cin, cout = 1, 7, 11, 32, 48
    x, wq, w_scale, tap_scale, bias, slope, skip = random_case(3, n, h, w, cin, cout)
    skip = skip if with_skip else None
    out_q = None if output == "fp32" else (0.05, 100)
    args = dict(x_scale=0.03, x_zero=128, activation=activation, slope=slope, alpha=0.1,
                skip=skip, out_q=out_q, fp32_too=output == "both")
    got, family = run_winograd_int8(x, wq, w_scale, tap_scale, bias, **args)
    assert family == expected_family(int8_isa)
    portable, _ = on_portable(int8_isa, lambda: run_winograd_int8(x, wq, w_scale, tap_scale,
                                                                  bias, **args))
    np.testing.assert_array_equal(got, portable)  # the same float operations in every family
    q = quantize_ref(x, 0.03, 128)
    y = winograd_int8_ref(q, 128, 0.03, wq, w_scale, tap_scale, bias, activation, slope, 0.1)
    if with_skip:
        y = y + skip
    tol = 1e-5 * np.abs(y).max()
    if output != "u8":
        np.testing.assert_allclose(got[..., :cout], y, rtol=0, atol=tol)
    if output != "fp32":
        u8 = got[..., -cout:]
        want = (quantize_ref(y, 0.05, 100).astype(F32) - F32(100)) * F32(0.05)
        assert np.abs(u8 - want).max() <= 0.05 * 1.001  # one code where fp32 rounding ties
        assert np.mean(u8 != want) < 1e-3
    if output == "u8" and not with_skip and activation in ("none", "relu"):
        codes = winograd_int8_u8_ref(q, 128, 0.03, wq, w_scale, tap_scale, bias, activation,
                                     0.05, 100)
        np.testing.assert_array_equal(got, (codes.astype(F32) - F32(100)) * F32(0.05))


@pytest.mark.parametrize("h,w", [(16, 16), (9, 13)])
def test_winograd_int8_is_the_fp32_conv_within_the_quantisation_error(h, w):
    """Natural-ish activations (smooth, ReLU'd) and conv weights, tap scales calibrated on
    the input itself: the error against the fp32 conv is of the order of the direct int8
    conv's (each tap keeps 8 bits of a range up to 4x the input's)."""
    from fastsr.quantize import quantize_weight, scale_and_zero
    from fastsr.winograd_int8 import calibrate_taps

    rng = np.random.default_rng(0)
    cin = cout = 64
    x = torch.nn.functional.avg_pool2d(torch.randn(1, cin, h + 4, w + 4), 5, 1).relu()
    x = (x / x.amax()).permute(0, 2, 3, 1).numpy().astype(F32)
    weight = (rng.standard_normal((cout, cin, 3, 3)) * 0.05).astype(F32)
    bias = np.zeros(cout, F32)
    want = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(weight),
                    padding=1).permute(0, 2, 3, 1).numpy()
    scale, zero = scale_and_zero(0.0, float(x.max()))
    taps = calibrate_taps([x], scale, zero, "max")
    wq, w_scale = quantize_winograd_weight(weight)
    got, _ = run_winograd_int8(x, wq, w_scale, taps, bias, x_scale=scale, x_zero=zero)
    rms = lambda e: float(np.sqrt(np.mean(np.square(e))))  # noqa: E731
    error = rms(got - want) / rms(want)
    q = quantize_ref(x, scale, zero)
    dq, d_scale = quantize_weight(weight)
    direct = F.conv2d(torch.from_numpy((q.astype(F32) - zero) * F32(scale)).permute(0, 3, 1, 2),
                      torch.from_numpy(dq.astype(F32) * d_scale[:, None, None, None]),
                      padding=1).permute(0, 2, 3, 1).numpy()
    direct_error = rms(direct - want) / rms(want)
    assert error < 2 * direct_error, (error, direct_error)  # measured 1.3x


def test_weight_taps_are_g_g_gt_quantised_per_tap_and_channel():
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((5, 3, 3, 3)).astype(F32)
    q, scale = quantize_winograd_weight(weight)
    assert q.shape == (16, 5, 3) and scale.shape == (16, 5) and np.abs(q).max() == 63
    u = np.einsum("ia,ocab,jb->ijoc", G, weight.astype(np.float64), G).reshape(16, 5, 3)
    np.testing.assert_allclose(q * scale[..., None], u, atol=0.5 * scale.max())
    np.testing.assert_array_equal(np.abs(q).max(axis=2), 63)  # every (tap, out) row fills 7 bits


def test_taps_requantise_by_the_q15_rule():
    """Hand-worked: s = 8 is mult 4096, shift 0, so V / 8 rounds half up; s = 0.3 needs
    shift 2 (1.2 >= 1) and mult round(32768 / 1.2) = 27307; s = 2^-6 saturates mult at
    shift 5; the u8 clamps at 0 and 255."""
    shift, mult = tap_requantizers([8.0, 0.3, 2.0**-6])
    assert shift.tolist() == [0, 2, 5] and mult.tolist() == [4096, 27307, 32767]
    v = np.array([[4, -4, 12, -12, 1020, -1020]] * 2 + [[1, -1, 2, 3, 4, -5]])
    got = quantize_taps(np.tile(v, (6, 1))[:16].reshape(16, 1, 6), [8.0, 0.3, 2.0**-6] * 5 + [8])
    np.testing.assert_array_equal(got[0, 0], [129, 128, 130, 127, 255, 1])  # -127.5 up
    np.testing.assert_array_equal(got[1, 0], [141, 115, 168, 88, 255, 0])  # 4 * 4 * 27307 / 2^15
    np.testing.assert_array_equal(got[2, 0], [160, 96, 192, 224, 255, 0])  # x 32: 2^15 - 1


def test_input_taps_are_bt_d_b_of_each_padded_patch():
    d = np.arange(3 * 5, dtype=np.int64).reshape(1, 3, 5, 1) - 7
    taps = input_taps(d)  # tiles 2 x 3
    padded = np.zeros((1, 6, 8, 1), np.int64)
    padded[:, 1:4, 1:6] = d
    patch = padded[0, 2:6, 4:8, 0]  # tile (1, 2)
    np.testing.assert_array_equal(taps[:, 0, 1, 2, 0].reshape(4, 4), BT @ patch @ BT.T)


def test_conv2d_int8_winograd_rejects_bad_input():
    p = _C.Program(1)
    x = p.byte_view(p.add_byte_buffer(1, 4, 4, 32, 1), 0, 32)
    thin = p.byte_view(p.add_byte_buffer(1, 4, 4, 32, 0), 0, 32)
    out = p.view(p.add_buffer(1, 4, 4, 32), 0, 32)
    w, ws, ts = np.zeros((16, 32, 32), np.int8), np.ones((16, 32), F32), np.ones(16, F32)
    args = dict(x_scale=1.0, x_zero=0, out=out)
    with pytest.raises(ValueError, match="63"):
        p.conv2d_int8_winograd(x, np.full((16, 32, 32), 64, np.int8), ws, ts, **args)
    with pytest.raises(ValueError, match="16, cout, cin"):
        p.conv2d_int8_winograd(x, np.zeros((9, 32, 32), np.int8), ws, ts, **args)
    with pytest.raises(ValueError, match="multiples of 16"):
        p.conv2d_int8_winograd(x, np.zeros((16, 32, 24), np.int8), ws, ts, **args)
    with pytest.raises(ValueError, match="positive"):
        p.conv2d_int8_winograd(x, w, ws, np.zeros(16, F32), **args)
    with pytest.raises(ValueError, match=r"\(16, cout\)"):
        p.conv2d_int8_winograd(x, w, np.ones((16, 8), F32), ts, **args)
    with pytest.raises(ValueError, match="border"):
        p.conv2d_int8_winograd(thin, w, ws, ts, **args)
    with pytest.raises(TypeError, match="int8"):
        p.conv2d_int8_winograd(x, w.astype(F32), ws, ts, **args)
    with pytest.raises(ValueError, match="out"):
        p.conv2d_int8_winograd(x, w, ws, ts, x_scale=1.0, x_zero=0)


@pytest.fixture(scope="module")
def wide_srnet():
    """An SRNet whose body convs (32 -> 32) fit int8 Winograd, calibrated on smooth crops."""
    from fastsr.graph.from_torch import capture
    from fastsr.graph.passes import optimize
    from fastsr.quantize import calibrate
    from tests.test_qat import small_srnet
    from tests.test_quantize import smooth_images

    model = small_srnet(channels=32)
    graph = optimize(capture(model, 3, {"scale": 2}))
    return model, calibrate(graph, smooth_images(3, 24, 24, 3), "mse")


def test_calibration_records_the_tap_scales_of_winograd_convs(wide_srnet):
    from fastsr.quantize import runs_int8_winograd
    from fastsr.winograd_int8 import TRANSFORM

    _, graph = wide_srnet
    meta = graph.meta["int8"]
    producers = graph.producers()
    fits = {producers[name].inputs[0] for name in meta["layers"]
            if runs_int8_winograd(graph, producers[name])}
    assert fits and meta["winograd"]["transform"] == TRANSFORM
    assert set(meta["winograd"]["taps"]) == fits
    for scales in meta["winograd"]["taps"].values():
        assert len(scales) == 16 and min(scales) > 0


def _int8_run(graph, family, x):
    from fastsr.engine import Engine

    _C.set_int8_isa(family)
    try:
        return Engine(graph, "cpu", "int8", threads=1).run(x)
    finally:
        _C.set_int8_isa(None)


@pytest.mark.parametrize("family", ["amx", "avx512vnni", "avxvnni", "avx2", "portable"])
def test_int8_programs_run_winograd_where_the_family_gains(wide_srnet, family):
    """With the taps, the body convs run as Winograd on the families of WINOGRAD_FAMILIES
    (the same output at each) and direct elsewhere; without them direct; all near fp32."""
    from fastsr.backends.cpu_int8 import WINOGRAD_FAMILIES
    from fastsr.engine import Engine
    from tests.test_quantize import smooth_images

    if family not in _C.supported_int8_isas():
        pytest.skip(f"int8 {family} not supported by this CPU")
    _, graph = wide_srnet
    direct = graph.copy()
    direct.meta["int8"] = {k: v for k, v in graph.meta["int8"].items() if k != "winograd"}
    x = smooth_images(1, 19, 23, 3, seed=4)[0]
    fp32 = Engine(graph, "cpu", threads=1).run(x)
    got, plain = _int8_run(graph, family, x), _int8_run(direct, family, x)
    if family in WINOGRAD_FAMILIES:
        assert not np.array_equal(got, plain)
        np.testing.assert_array_equal(got, _int8_run(graph, WINOGRAD_FAMILIES[-1], x))
    else:
        np.testing.assert_array_equal(got, plain)
    for y in (got, plain):
        assert np.abs(y - fp32).max() < 0.02


@pytest.mark.parametrize(
    "winograd,match",
    [({"transform": "F(4x4,3x3)", "taps": {}}, "F\\(2x2,3x3\\)"),
     ({"transform": "F(2x2,3x3)", "taps": []}, "map tensors"),
     ({"transform": "F(2x2,3x3)", "taps": {"add": [1.0] * 15}}, "16 positive")],
)
def test_malformed_tap_scales_are_refused(wide_srnet, winograd, match):
    from fastsr.engine import Engine

    graph = wide_srnet[1].copy()
    graph.meta["int8"] = {**graph.meta["int8"], "winograd": winograd}
    with pytest.raises(ValueError, match=match):
        Engine(graph, "cpu", "int8").run(np.zeros((1, 8, 8, 3), F32))

