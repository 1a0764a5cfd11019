"""The int8 conv kernel, quantize and dequantize steps of fastsr._C, bit for bit against a
numpy integer reference and against the portable kernels, with every int8 kernel family
this CPU runs (portable, avx2, and the VNNI ones where cpuid reports them): integer
accumulation is exact, so every family must give the same int32 sums and outputs."""

from __future__ import annotations

import numpy as np
import pytest
from simd_levels import AVAILABLE, INT8_AVAILABLE, cpu_flags

from fastsr import _C

F32 = np.float32


def quantize_ref(x, scale, zero):
    inv = F32(1) / F32(scale)
    return np.rint(np.clip(x * inv + F32(zero), F32(0), F32(255))).astype(np.uint8)


def pixel_shuffle_ref(y, r):
    n, h, w, c = y.shape
    return (
        y.reshape(n, h, w, c // (r * r), r, r)
        .transpose(0, 1, 4, 2, 5, 3)
        .reshape(n, h * r, w * r, c // (r * r))
    )


def int_sums_ref(q, zero, wq, stride, pad, dilation):
    """Integer accumulation of (q - zero) * w over a zero-padded input, in int64."""
    xi = np.pad(q.astype(np.int64) - zero, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    n, hp, wp, _ = xi.shape
    cout, _, kh, kw = wq.shape
    oh = (hp - dilation * (kh - 1) - 1) // stride + 1
    ow = (wp - dilation * (kw - 1) - 1) // stride + 1
    acc = np.zeros((n, oh, ow, cout), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation, kx * dilation
            tap = xi[
                :,
                y0 : y0 + stride * (oh - 1) + 1 : stride,
                x0 : x0 + stride * (ow - 1) + 1 : stride,
            ]
            acc += np.einsum("nhwc,oc->nhwo", tap, wq[:, :, ky, kx].astype(np.int64))
    return acc


def conv_int8_ref(q, zero, wq, x_scale, w_scale, bias, stride, pad, dilation, act, slope, alpha):
    """int_sums_ref, then the fp32 epilogue in the kernel's order (multiply, add, activation)."""
    acc = int_sums_ref(q, zero, wq, stride, pad, dilation)
    return activation_ref(acc.astype(F32) * (F32(x_scale) * w_scale) + bias, act, slope, alpha)


def activation_ref(y, act, slope, alpha):
    """The kernels' activations on fp32 values, as float32."""
    if act == "relu":
        y = np.maximum(y, F32(0))
    elif act == "prelu":
        y = np.where(y > 0, y, slope * y)
    elif act == "leaky_relu":
        y = np.where(y > 0, y, F32(alpha) * y)
    return y.astype(F32)


REQUANTISED_ACTS = ("none", "relu")


def requantize_ref(acc, x_scale, w_scale, bias, out_scale, out_zero, act):
    """The u8 codes of a conv whose u8 output is its only one, without skip, with ReLU or
    no activation: the sums to the u8 grid by one multiply and one add per channel (scale /
    out_scale, bias / out_scale + zero, each rounded to float32), clamped at the zero point
    for ReLU, at 0 otherwise, and at 255."""
    inv = F32(1) / F32(out_scale)
    u8_scale = (F32(x_scale) * w_scale) * inv
    u8_bias = bias * inv + F32(out_zero)
    low = F32(out_zero) if act == "relu" else F32(0)
    y = acc.astype(F32) * u8_scale + u8_bias
    return np.rint(np.clip(y, low, F32(255))).astype(np.uint8)


def random_case(seed, n, h, w, cin, cout, k):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(F32)
    wq = rng.integers(-_C.INT8_WEIGHT_MAX, _C.INT8_WEIGHT_MAX + 1, (cout, cin, k, k)).astype(
        np.int8
    )
    w_scale = (rng.random(cout) * 0.01 + 0.001).astype(F32)
    bias = rng.standard_normal(cout).astype(F32)
    slope = (rng.random(cout) * 0.5).astype(F32)
    return x, wq, w_scale, bias, slope


def run_conv_int8(
    x,
    wq,
    w_scale,
    bias,
    *,
    x_scale,
    x_zero,
    stride=1,
    pad=0,
    dilation=1,
    activation="none",
    slope=None,
    alpha=0.0,
    shuffle=1,
    skip=None,
    out_q=None,
    fp32_too=None,
):
    """One Program: quantize x, the int8 conv (fp32 or u8 out, then dequantized), with
    `skip` (fp32, output-sized) read from the Program's input past x's channels. Returns
    the output and the kernel family the conv step runs. With out_q and `fp32_too`, the
    output is fp32 and u8 (dequantized) side by side along channels, the u8 stored by the
    conv itself ("one_pass") or by a quantize step from its fp32 output ("quantize_step")."""
    n, h, w, cin = x.shape
    cout, _, kh, kw = wq.shape
    oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    oc = cout // (shuffle * shuffle)
    extra = 0 if skip is None else oc * shuffle * shuffle
    p = _C.Program(1)
    src = p.add_buffer(n, h, w, cin + extra)
    p.set_input(p.view(src, 0, cin + extra))
    xq = p.byte_view(p.add_byte_buffer(n, h, w, cin, pad, fill=x_zero), 0, cin)
    p.quantize(p.view(src, 0, cin), x_scale, x_zero, xq)
    both = 2 if fp32_too else 1
    result = p.add_buffer(n, oh * shuffle, ow * shuffle, both * oc)
    out = p.view(result, 0, oc)
    p.set_output(p.view(result, 0, both * oc))
    skip_view = None
    feed = x
    if skip is not None:
        assert (oh, ow) == (h, w)
        skip_view = p.view(p.add_buffer(n, h * shuffle, w * shuffle, oc), 0, oc)
        tail = p.view(src, cin, extra)
        if shuffle == 1:
            p.copy(tail, skip_view)
        else:
            p.pixel_shuffle(tail, shuffle, skip_view)
        feed = np.concatenate([x, skip], axis=3)
    common = dict(
        x_scale=x_scale,
        x_zero=x_zero,
        stride=stride,
        pad_top=pad,
        pad_left=pad,
        dilation=dilation,
        activation=activation,
        slope=slope,
        alpha=alpha,
        shuffle=shuffle,
        skip=skip_view,
    )
    if out_q is None:
        family = p.conv2d_int8(xq, wq, w_scale, bias, out=out, **common)
        return p.run(np.ascontiguousarray(feed)), family
    q_scale, q_zero = out_q
    yq = p.byte_view(p.add_byte_buffer(n, oh * shuffle, ow * shuffle, oc), 0, oc)
    if fp32_too == "quantize_step":
        family = p.conv2d_int8(xq, wq, w_scale, bias, out=out, **common)
        p.quantize(out, q_scale, q_zero, yq)
    else:
        fp32 = dict(out=out) if fp32_too == "one_pass" else {}
        family = p.conv2d_int8(
            xq, wq, w_scale, bias, out_q=yq, out_scale=q_scale, out_zero=q_zero, **common, **fp32
        )
    p.dequantize(yq, q_scale, q_zero, p.view(result, (both - 1) * oc, oc))
    return p.run(np.ascontiguousarray(feed)), family


def on_portable(isa, run):
    """`run()` with the portable kernels, then back to `isa`."""
    _C.set_int8_isa("portable")
    try:
        return run()
    finally:
        _C.set_int8_isa(isa)


def expected_family(isa, cout, cin):
    """AMX takes a conv of at least 32 input and more than 8 output channels (narrower ones
    do not fill its tiles) and leaves the rest to AVX-512 VNNI. A conv of at most 8 output
    channels leaves AVX-512 VNNI's 16 lanes for AVX-VNNI's 8 (AVX2 where the CPU lacks
    AVX-VNNI, as Zen 4 does)."""
    if isa == "amx" and (cin < 32 or cout <= 8):
        isa = "avx512vnni"
    if isa == "avx512vnni" and cout <= 8:
        return "avxvnni" if "avxvnni" in INT8_AVAILABLE else "avx2"
    return isa


# n, h, w, cin, cout, k, stride, dilation: narrow layers (<= 8 channels: AVX-VNNI at the
# avx512vnni level), wide ones (several vector groups and a partial vector at every
# family), widths that leave a partial tile, strided and dilated windows.
SUM_SHAPES = [
    (1, 5, 7, 3, 8, 3, 1, 1),
    (1, 4, 13, 5, 1, 3, 1, 1),
    (2, 3, 9, 17, 6, 5, 1, 1),
    (1, 4, 37, 64, 64, 3, 1, 1),
    (1, 3, 23, 24, 100, 3, 1, 1),
    (1, 7, 11, 12, 24, 1, 2, 1),
    (1, 9, 10, 8, 16, 3, 1, 2),
]


@pytest.mark.parametrize("n,h,w,cin,cout,k,stride,dilation", SUM_SHAPES)
def test_int8_sums_are_identical_at_every_family(int8_isa, n, h, w, cin, cout, k, stride, dilation):
    """Unit scales and no bias: the fp32 output is the int32 sum itself (exact below 2^24)."""
    rng = np.random.default_rng(cin * cout + k)
    zero = 131
    q = rng.integers(0, 256, (n, h, w, cin))
    x = (q - zero).astype(F32)  # scale 1 quantises back to q exactly
    wq = rng.integers(-_C.INT8_WEIGHT_MAX, _C.INT8_WEIGHT_MAX + 1, (cout, cin, k, k)).astype(
        np.int8
    )
    ones, zeros = np.ones(cout, F32), np.zeros(cout, F32)
    pad = dilation * (k // 2)
    args = dict(x_scale=1.0, x_zero=zero, stride=stride, pad=pad, dilation=dilation)
    got, family = run_conv_int8(x, wq, ones, zeros, **args)
    assert family == expected_family(int8_isa, cout, cin)
    sums = int_sums_ref(q, zero, wq, stride, pad, dilation)
    assert np.abs(sums).max() < 2**24
    np.testing.assert_array_equal(got, sums.astype(F32))
    portable, _ = on_portable(int8_isa, lambda: run_conv_int8(x, wq, ones, zeros, **args))
    np.testing.assert_array_equal(got, portable)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize(
    "n,h,w,cin,cout,stride,dilation",
    [
        (1, 7, 9, 3, 5, 1, 1),
        (2, 5, 13, 17, 24, 1, 1),
        (1, 11, 6, 32, 33, 2, 1),
        (1, 9, 10, 8, 16, 1, 2),
    ],
)
def test_conv_int8_bit_exact(int8_isa, k, n, h, w, cin, cout, stride, dilation):
    x, wq, w_scale, bias, _ = random_case(k + cin, n, h, w, cin, cout, k)
    pad = dilation * (k // 2)
    got, _ = run_conv_int8(
        x, wq, w_scale, bias, x_scale=0.02, x_zero=131, stride=stride, pad=pad, dilation=dilation
    )
    q = quantize_ref(x, 0.02, 131)
    want = conv_int8_ref(q, 131, wq, 0.02, w_scale, bias, stride, pad, dilation, "none", None, 0)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("activation", ["none", "relu", "prelu", "leaky_relu"])
@pytest.mark.parametrize("shuffle", [1, 2, 3])
@pytest.mark.parametrize("with_skip", [False, True])
@pytest.mark.parametrize("u8_out", [False, True])
@pytest.mark.parametrize("oc", [3, 20])
@pytest.mark.parametrize("cin,w", [(10, 11), (32, 35)])  # 32 in: AMX tiles where cout >= 16
def test_conv_int8_epilogues_bit_exact(
    int8_isa, activation, shuffle, with_skip, u8_out, oc, cin, w
):
    k, h = 3, 6
    cout = oc * shuffle * shuffle
    x, wq, w_scale, bias, slope = random_case(7 * shuffle + oc + cin, 1, h, w, cin, cout, k)
    skip = (
        np.random.default_rng(3).standard_normal((1, h, w, cout)).astype(F32) if with_skip else None
    )
    out_q = (0.05, 100) if u8_out else None
    args = dict(
        x_scale=0.03,
        x_zero=128,
        pad=1,
        activation=activation,
        slope=slope,
        alpha=0.1,
        shuffle=shuffle,
        skip=skip,
        out_q=out_q,
    )
    got, family = run_conv_int8(x, wq, w_scale, bias, **args)
    assert family == expected_family(int8_isa, cout, cin)
    portable, _ = on_portable(int8_isa, lambda: run_conv_int8(x, wq, w_scale, bias, **args))
    np.testing.assert_array_equal(got, portable)
    q = quantize_ref(x, 0.03, 128)
    y = conv_int8_ref(q, 128, wq, 0.03, w_scale, bias, 1, 1, 1, activation, slope, 0.1)
    y = pixel_shuffle_ref(y, shuffle)
    if with_skip:
        y = y + pixel_shuffle_ref(skip, shuffle)
    if u8_out and skip is None and activation in REQUANTISED_ACTS:
        acc = int_sums_ref(q, 128, wq, 1, 1, 1)
        codes = requantize_ref(acc, 0.03, w_scale, bias, *out_q, activation)
        y = (pixel_shuffle_ref(codes, shuffle).astype(F32) - F32(100)) * F32(0.05)
    elif u8_out:
        y = (quantize_ref(y, *out_q).astype(F32) - F32(100)) * F32(0.05)
    np.testing.assert_array_equal(got, y)


@pytest.mark.parametrize("activation", ["none", "prelu"])
@pytest.mark.parametrize("shuffle", [1, 2])
@pytest.mark.parametrize("with_skip", [False, True])
@pytest.mark.parametrize("oc", [3, 20])
@pytest.mark.parametrize("cin,w", [(9, 11), (32, 35)])  # 32 in: AMX tiles where cout >= 16
def test_conv_int8_fp32_and_u8_in_one_pass(int8_isa, activation, shuffle, with_skip, oc, cin, w):
    """Both outputs from one conv: the fp32 one as the conv alone writes it, the u8 one bit
    for bit the quantize step of that fp32 output, and both the numpy reference's; the
    fp32 output is a channel slice (pixel stride 2 oc), the u8 one dense (oc)."""
    k, h = 3, 5
    cout = oc * shuffle * shuffle
    x, wq, w_scale, bias, slope = random_case(5 * shuffle + oc + cin, 1, h, w, cin, cout, k)
    skip = (
        np.random.default_rng(4).standard_normal((1, h, w, cout)).astype(F32) if with_skip else None
    )
    args = dict(
        x_scale=0.03, x_zero=128, pad=1, activation=activation, slope=slope, shuffle=shuffle,
        skip=skip, out_q=(0.05, 100),
    )  # fmt: skip
    got, family = run_conv_int8(x, wq, w_scale, bias, **args, fp32_too="one_pass")
    assert family == expected_family(int8_isa, cout, cin)
    separate, _ = run_conv_int8(x, wq, w_scale, bias, **args, fp32_too="quantize_step")
    np.testing.assert_array_equal(got, separate)
    q = quantize_ref(x, 0.03, 128)
    y = pixel_shuffle_ref(
        conv_int8_ref(q, 128, wq, 0.03, w_scale, bias, 1, 1, 1, activation, slope, 0.0), shuffle
    )
    if with_skip:
        y = y + pixel_shuffle_ref(skip, shuffle)
    np.testing.assert_array_equal(got[..., :oc], y)
    u8 = (quantize_ref(y, 0.05, 100).astype(F32) - F32(100)) * F32(0.05)
    np.testing.assert_array_equal(got[..., oc:], u8)


def test_quantize_rounds_half_to_even_and_saturates(int8_isa):
    x = np.array([-1.0, 0.0, 0.5, 1.5, 2.5, 3.49, 254.5, 300.0], F32).reshape(1, 1, 8, 1)
    p = _C.Program(1)
    f = p.view(p.add_buffer(1, 1, 8, 1), 0, 1)
    b = p.byte_view(p.add_byte_buffer(1, 1, 8, 1), 0, 1)
    g = p.view(p.add_buffer(1, 1, 8, 1), 0, 1)
    p.set_input(f), p.set_output(g)
    p.quantize(f, 1.0, 0, b)
    p.dequantize(b, 1.0, 0, g)
    np.testing.assert_array_equal(p.run(x).ravel(), [0, 0, 0, 2, 2, 3, 254, 255])


@pytest.mark.parametrize("channels", [1, 3, 16, 17])
@pytest.mark.parametrize("sliced", [False, True])
def test_quantize_matches_numpy(int8_isa, channels, sliced):
    """Whole rows (pixels without gaps), or channel slices of wider buffers whose other
    channels the step must leave alone; widths end in a partial vector."""
    n, h, w = 2, 3, 37
    src_extra, dst_extra = (5, 3) if sliced else (0, 0)
    rng = np.random.default_rng(channels)
    x = (rng.standard_normal((n, h, w, channels + src_extra)) * 3).astype(F32)
    p = _C.Program(1)
    src = p.add_buffer(n, h, w, channels + src_extra)
    p.set_input(p.view(src, 0, channels + src_extra))
    q = p.add_byte_buffer(n, h, w, channels + dst_extra, 0, fill=77)
    p.quantize(p.view(src, 0, channels), 0.02, 120, p.byte_view(q, 0, channels))
    out = p.view(p.add_buffer(n, h, w, channels + dst_extra), 0, channels + dst_extra)
    p.dequantize(p.byte_view(q, 0, channels + dst_extra), 1.0, 0, out)
    p.set_output(out)
    want = quantize_ref(x[..., :channels], 0.02, 120).astype(F32)
    want = np.concatenate([want, np.full((n, h, w, dst_extra), 77, F32)], axis=3)
    np.testing.assert_array_equal(p.run(x), want)


def test_every_int8_family_the_cpu_reports_is_used():
    """cpuid's own words (/proc/cpuinfo) against supported_int8_isas(): AVX-VNNI (VEX) and
    AVX-512 VNNI each run where the CPU has them."""
    flags = cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo to read the CPU's features from")
    if "avx2" not in flags or "avx2" not in AVAILABLE:
        pytest.skip("not an x86 CPU with AVX2")
    assert "avx2" in INT8_AVAILABLE
    assert ("avxvnni" in INT8_AVAILABLE) == ("avx_vnni" in flags)
    has_avx512 = "avx512" in AVAILABLE
    assert ("avx512vnni" in INT8_AVAILABLE) == (has_avx512 and "avx512_vnni" in flags)
    amx = {"amx_tile", "amx_int8", "avx512_vnni"} <= flags
    assert ("amx" in INT8_AVAILABLE) == (has_avx512 and amx)


def test_set_int8_isa_forces_a_family_until_reset():
    before = _C.int8_isa()
    try:
        _C.set_int8_isa("portable")
        assert _C.int8_isa() == "portable"
        with pytest.raises(ValueError, match="expected one of"):
            _C.set_int8_isa("sse9")
        for isa in {"neon", "avx2"} - set(INT8_AVAILABLE):
            with pytest.raises(ValueError, match="not supported"):
                _C.set_int8_isa(isa)
        assert _C.int8_isa() == "portable"  # a refusal changes nothing
    finally:
        _C.set_int8_isa(None)
    assert _C.int8_isa() == before


def test_conv_int8_rejects_bad_input():
    p = _C.Program(1)
    x = p.byte_view(p.add_byte_buffer(1, 4, 4, 3, 1), 0, 3)
    out = p.view(p.add_buffer(1, 4, 4, 2), 0, 2)
    ok = np.zeros((2, 3, 3, 3), np.int8)
    scale = np.ones(2, F32)
    with pytest.raises(ValueError, match="63"):
        p.conv2d_int8(
            x,
            np.full((2, 3, 3, 3), 64, np.int8),
            scale,
            x_scale=1,
            x_zero=0,
            out=out,
            pad_top=1,
            pad_left=1,
        )
    with pytest.raises(TypeError, match="int8"):
        p.conv2d_int8(x, ok.astype(F32), scale, x_scale=1, x_zero=0, out=out, pad_top=1, pad_left=1)
    with pytest.raises(ValueError, match="border"):
        p.conv2d_int8(
            x,
            np.zeros((2, 3, 5, 5), np.int8),
            scale,
            x_scale=1,
            x_zero=0,
            out=out,
            pad_top=2,
            pad_left=2,
        )
    with pytest.raises(ValueError, match="or both"):
        p.conv2d_int8(x, ok, scale, x_scale=1, x_zero=0, pad_top=1, pad_left=1)
    small, pads = p.byte_view(p.add_byte_buffer(1, 3, 4, 2, 0), 0, 2), dict(pad_top=1, pad_left=1)
    with pytest.raises(ValueError, match="outputs differ"):
        p.conv2d_int8(x, ok, scale, x_scale=1, x_zero=0, out=out, out_q=small, **pads)
    with pytest.raises(ValueError, match="tanh|activation"):
        p.conv2d_int8(
            x, ok, scale, x_scale=1, x_zero=0, out=out, pad_top=1, pad_left=1, activation="tanh"
        )
    with pytest.raises(ValueError, match="zero point"):
        p.conv2d_int8(x, ok, scale, x_scale=1, x_zero=300, out=out, pad_top=1, pad_left=1)
    with pytest.raises(ValueError, match="scale"):
        p.conv2d_int8(x, ok, scale, x_scale=0, x_zero=0, out=out, pad_top=1, pad_left=1)


def test_int8_isa_follows_the_simd_level():
    before = _C.simd_level()
    try:
        _C.set_simd_level("portable")
        assert _C.int8_isa() == "portable"
        if "avx2" in AVAILABLE:
            _C.set_simd_level("avx2")
            assert _C.int8_isa() in ("avx2", "avxvnni")
        if "neon" in AVAILABLE:
            _C.set_simd_level("neon")
            assert _C.int8_isa() in ("neon", "neon-dotprod")
    finally:
        _C.set_simd_level(before)
