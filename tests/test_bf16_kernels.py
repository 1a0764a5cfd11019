"""The bf16 conv kernels (each family the CPU has: AMX tiles, AVX512_BF16, NEON bfdot) and
the fp32 <-> bf16 steps of fastsr._C, and precision="bf16" on the cpu backend, against
torch: float64 convolution of the bf16-rounded input and weights (torch's own rounding,
nearest even).

Tolerance. Every bf16 x bf16 product is exact in fp32 (8 x 8 significant bits), so the
kernel differs from the float64 sum only by fp32 additions in its own order: at most
(terms + 2) * 2^-24 * (sum |x w| + |bias|) for `terms` products (the standard bound on a
recursive sum; TDPBF16PS adds its products into the fp32 accumulator the same way, so
its rounding count is no larger), times 1.1 through the activations (silu's slope is
below 1.1), plus 3e-7 (1 + |y|) for the vector tanh / sigmoid / silu and an fp32 rounding
of the skip add; a bf16 output adds its own rounding, half a bf16 step: 2^-8 |y|. A
product dropped or read from the wrong tap or channel is ~ sum |x w| / terms, far above
the bound.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from simd_levels import BF16_AVAILABLE, cpu_flags

from fastsr import _C
from fastsr.backends import get_backend
from fastsr.backends.cpu import conv_spec
from fastsr.backends.cpu_bf16 import bf16_layers
from fastsr.engine import Engine, make_plan
from fastsr.graph import load

pytestmark = pytest.mark.skipif(
    not _C.bf16_supported(),
    reason="no bf16 dot product (avx512_bf16, FEAT_BF16) at this CPU's SIMD level "
    f"({_C.simd_level()}): no bf16 kernel to test",
)

F32 = np.float32
U = 2.0**-24  # fp32 unit roundoff
BELOW = "portable" if _C.simd_level() == "neon" else "avx2"  # a level without them
ACTIVATIONS = {
    "none": lambda y, slope, alpha: y,
    "relu": lambda y, slope, alpha: torch.relu(y),
    "prelu": lambda y, slope, alpha: torch.where(y > 0, y, slope.view(1, -1, 1, 1) * y),
    "leaky_relu": lambda y, slope, alpha: torch.where(y > 0, y, alpha * y),
    "tanh": lambda y, slope, alpha: torch.tanh(y),
    "sigmoid": lambda y, slope, alpha: torch.sigmoid(y),
    "silu": lambda y, slope, alpha: y * torch.sigmoid(y),
}


def bf16(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).to(torch.bfloat16).double()


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).double().permute(0, 3, 1, 2)


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def reference(
    x, weight, bias, stride, pad, dilation, activation, slope, alpha, shuffle, skip, roundings=None
):
    """(y, bound): the float64 result and the elementwise bound of the module docstring;
    `roundings` (default terms + 2) counts the roundings of unit U a product passes."""
    xb, wb = bf16(x).permute(0, 3, 1, 2), bf16(weight)
    conv = dict(stride=stride, padding=pad, dilation=dilation)
    b = torch.from_numpy(bias).double()
    y = F.conv2d(xb, wb, b, **conv)
    magnitude = F.conv2d(xb.abs(), wb.abs(), b.abs(), **conv)
    if roundings is None:
        roundings = weight.shape[1] * weight.shape[2] * weight.shape[3] + 2
    slope_t = None if slope is None else torch.from_numpy(slope).double()
    y = ACTIVATIONS[activation](y, slope_t, alpha)
    bound = 1.1 * roundings * U * magnitude + 3e-7 * (1 + y.abs())
    y, bound = F.pixel_shuffle(y, shuffle), F.pixel_shuffle(bound, shuffle)
    if skip is not None:
        y = y + nchw(skip)
        bound = bound + U * y.abs()
    return nhwc(y), nhwc(bound)


def expected_family(isa: str, cin: int) -> str:
    """AMX takes every conv with an even input channel count (tiles beat AVX512_BF16 at
    every width measured); an odd one runs the AVX512_BF16 kernel."""
    return "avx512bf16" if isa == "amx" and cin % 2 else isa


def run_conv_bf16(
    x, weight, bias, *, stride=1, pad=0, dilation=1, activation="none", slope=None, alpha=0.0,
    shuffle=1, skip=None, bf16_out=False, fp32_too=None, threads=1,
):  # fmt: skip
    """One Program: x to bf16, the bf16 conv (fp32 out, or bf16 out widened back), with
    `skip` (fp32, output-sized) read from the Program's input past x's channels. Returns the
    output and the kernel family that ran the conv. With bf16_out and `fp32_too`, the output
    is fp32 and bf16 (widened) side by side along channels, the bf16 stored by the conv
    itself ("one_pass") or by a to_bf16 step from its fp32 output ("to_bf16_step")."""
    n, h, w, cin = x.shape
    cout, _, kh, kw = weight.shape
    oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    oc = cout // (shuffle * shuffle)
    extra = 0 if skip is None else oc
    p = _C.Program(threads)
    src = p.add_buffer(n, h, w, cin) if skip is None else None
    feed = x
    if skip is not None:  # skip rides in the input at output size: h, w = output size
        src = p.add_buffer(n, h, w, cin + extra * shuffle * shuffle)
        skip_lr = nhwc(F.pixel_unshuffle(nchw(skip), shuffle)).astype(F32)
        feed = np.concatenate([x, skip_lr], axis=3)
    p.set_input(p.view(src, 0, feed.shape[3]))
    xb = p.bf16_view(p.add_bf16_buffer(n, h, w, cin, pad), 0, cin)
    p.to_bf16(p.view(src, 0, cin), xb)
    both = 2 if fp32_too else 1
    result = p.add_buffer(n, oh * shuffle, ow * shuffle, both * oc)
    out = p.view(result, 0, oc)
    p.set_output(p.view(result, 0, both * oc))
    skip_view = None
    if skip is not None:
        skip_view = p.view(p.add_buffer(n, oh * shuffle, ow * shuffle, oc), 0, oc)
        tail = p.view(src, cin, extra * shuffle * shuffle)
        if shuffle == 1:
            p.copy(tail, skip_view)
        else:
            p.pixel_shuffle(tail, shuffle, skip_view)
    common = dict(
        stride=stride, pad_top=pad, pad_left=pad, dilation=dilation, activation=activation,
        slope=slope, alpha=alpha, shuffle=shuffle, skip=skip_view,
    )  # fmt: skip
    if not bf16_out:
        family = p.conv2d_bf16(xb, weight, bias, out=out, **common)
        return p.run(np.ascontiguousarray(feed)), family
    yb = p.bf16_view(p.add_bf16_buffer(n, oh * shuffle, ow * shuffle, oc), 0, oc)
    if fp32_too == "to_bf16_step":
        family = p.conv2d_bf16(xb, weight, bias, out=out, **common)
        p.to_bf16(out, yb)
    else:
        fp32 = dict(out=out) if fp32_too == "one_pass" else {}
        family = p.conv2d_bf16(xb, weight, bias, out_bf16=yb, **common, **fp32)
    p.from_bf16(yb, p.view(result, (both - 1) * oc, oc))
    return p.run(np.ascontiguousarray(feed)), family


def random_case(seed, n, h, w, cin, cout, k):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin)).astype(F32)
    weight = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(F32)
    bias = rng.standard_normal(cout).astype(F32)
    slope = (rng.random(cout) * 0.5).astype(F32)
    return x, weight, bias, slope


def assert_within(got, want, bound):
    excess = np.abs(got.astype(np.float64) - want) - bound
    assert got.shape == want.shape
    assert excess.max() <= 0, f"exceeds the bound by {excess.max():.3g} at {np.argmax(excess)}"


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize(
    "n,h,w,cin,cout,stride,dilation",
    [
        (1, 7, 9, 1, 5, 1, 1),  # one input channel: the odd channel alone
        (2, 5, 13, 17, 24, 1, 1),  # odd channels, two images
        (1, 11, 6, 32, 33, 2, 1),  # stride 2, a group of 3 vectors + 1 channel
        (1, 9, 10, 8, 16, 1, 2),  # dilation 2
        (1, 6, 29, 64, 80, 1, 1),  # two groups (64 + 16 channels), tiles of 12 and a tail
    ],
)
def test_conv_bf16_matches_torch_on_rounded_operands(
    bf16_isa, k, n, h, w, cin, cout, stride, dilation
):
    x, weight, bias, _ = random_case(k + cin, n, h, w, cin, cout, k)
    pad = dilation * (k // 2)
    got, family = run_conv_bf16(x, weight, bias, stride=stride, pad=pad, dilation=dilation)
    assert family == expected_family(bf16_isa, cin)
    want, bound = reference(x, weight, bias, stride, pad, dilation, "none", None, 0.0, 1, None)
    assert_within(got, want, bound)


@pytest.mark.parametrize(
    "n,h,w,cin,cout,k,stride,dilation",
    [
        (1, 4, 16, 16, 16, 3, 1, 1),  # one tile exactly, 8-pair chunks
        (1, 3, 33, 48, 33, 3, 1, 1),  # 12-pair chunks, two pixel blocks and a 1-pixel tail
        (2, 3, 47, 64, 64, 3, 1, 1),  # two 16-pair chunks per tap, four vectors, two images
        (1, 3, 70, 96, 48, 1, 1, 1),  # three chunks per tap, odd vector count
        (1, 5, 37, 128, 80, 3, 2, 1),  # stride 2, two channel groups
        (1, 4, 40, 40, 24, 3, 1, 2),  # dilation 2, 10-pair chunks
        (1, 3, 40, 32, 18, 5, 1, 1),  # 5x5, a vector of 2 channels
        (1, 3, 20, 34, 17, 3, 1, 1),  # 17 pairs: chunks of one pair
        (1, 4, 35, 2, 4, 3, 1, 1),  # one pair in, 4 channels out: tiles mostly empty
        (1, 3, 20, 33, 32, 3, 1, 1),  # odd channels: AVX512_BF16
        (1, 3, 12, 64, 64, 3, 1, 1),  # narrower than a tile: the AVX512_BF16 tiles alone
    ],
)
def test_conv_bf16_tiles_match_torch(bf16_isa, n, h, w, cin, cout, k, stride, dilation):
    """Shapes that fill AMX tiles or leave them mostly empty, with pixel and channel tails
    and the layers AMX leaves to AVX512_BF16, at every family."""
    x, weight, bias, _ = random_case(cin + cout + w, n, h, w, cin, cout, k)
    pad = dilation * (k // 2)
    got, family = run_conv_bf16(x, weight, bias, stride=stride, pad=pad, dilation=dilation)
    assert family == expected_family(bf16_isa, cin)
    want, bound = reference(x, weight, bias, stride, pad, dilation, "none", None, 0.0, 1, None)
    assert_within(got, want, bound)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("shuffle", [1, 2, 3])
@pytest.mark.parametrize("with_skip", [False, True])
@pytest.mark.parametrize("bf16_out", [False, True])
@pytest.mark.parametrize("oc,cin,w", [(3, 9, 11), (17, 32, 37)])  # AMX: the second, and tails
def test_conv_bf16_epilogues(bf16_isa, activation, shuffle, with_skip, bf16_out, oc, cin, w):
    k, h = 3, 5
    cout = oc * shuffle * shuffle
    x, weight, bias, slope = random_case(7 * shuffle + cin, 1, h, w, cin, cout, k)
    rng = np.random.default_rng(3)
    skip = rng.standard_normal((1, h * shuffle, w * shuffle, oc)).astype(F32) if with_skip else None
    got, family = run_conv_bf16(
        x, weight, bias, pad=1, activation=activation, slope=slope, alpha=0.1, shuffle=shuffle,
        skip=skip, bf16_out=bf16_out, threads=2,
    )  # fmt: skip
    assert family == expected_family(bf16_isa, cin)
    want, bound = reference(x, weight, bias, 1, 1, 1, activation, slope, 0.1, shuffle, skip)
    if bf16_out:
        bound = bound * (1 + 2.0**-8) + 2.0**-8 * np.abs(want)
    assert_within(got, want, bound)


@pytest.mark.parametrize("activation", ["none", "prelu"])
@pytest.mark.parametrize("shuffle", [1, 2])
@pytest.mark.parametrize("with_skip", [False, True])
@pytest.mark.parametrize("oc,cin,w", [(3, 9, 11), (17, 32, 37)])  # AMX: the second, and tails
def test_conv_bf16_fp32_and_bf16_in_one_pass(bf16_isa, activation, shuffle, with_skip, oc, cin, w):
    """Both outputs from one conv: the bf16 one bit for bit the to_bf16 step of the fp32
    one and torch's nearest-even rounding of it, the fp32 one within the reference's bound;
    the fp32 output is a channel slice (pixel stride 2 oc), the bf16 one dense (oc)."""
    k, h = 3, 5
    cout = oc * shuffle * shuffle
    x, weight, bias, slope = random_case(5 * shuffle + cin, 1, h, w, cin, cout, k)
    rng = np.random.default_rng(4)
    skip = rng.standard_normal((1, h * shuffle, w * shuffle, oc)).astype(F32) if with_skip else None
    args = dict(
        pad=1, activation=activation, slope=slope, shuffle=shuffle, skip=skip, bf16_out=True,
        threads=2,
    )  # fmt: skip
    got, family = run_conv_bf16(x, weight, bias, **args, fp32_too="one_pass")
    assert family == expected_family(bf16_isa, cin)
    separate, _ = run_conv_bf16(x, weight, bias, **args, fp32_too="to_bf16_step")
    np.testing.assert_array_equal(got, separate)
    np.testing.assert_array_equal(got[..., oc:], bf16(got[..., :oc]).float().numpy())
    want, bound = reference(x, weight, bias, 1, 1, 1, activation, slope, 0.0, shuffle, skip)
    assert_within(got[..., :oc], want, bound)


def test_conv_bf16_output_is_rounded_to_bf16(bf16_isa):
    """A bf16 output holds exactly the bf16 values nearest the fp32 result (ties aside)."""
    x, weight, bias, _ = random_case(1, 1, 8, 20, 16, 16, 3)
    fp32, _ = run_conv_bf16(x, weight, bias, pad=1)
    rounded, _ = run_conv_bf16(x, weight, bias, pad=1, bf16_out=True)
    np.testing.assert_array_equal(rounded, bf16(fp32).float().numpy())


def test_to_bf16_rounds_half_to_even_and_from_bf16_is_exact():
    bits = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0xBF808001, 0x7F7FFFFF, 0], np.uint32)
    rng = np.random.default_rng(0)
    x = np.concatenate([bits.view(F32), rng.standard_normal(35).astype(F32) * 1e3])
    x = x.reshape(1, 1, 41, 1)
    for shape in ((1, 1, 41, 1), (1, 41, 1, 1)):  # one dense row; one pixel at a time
        p = _C.Program(2)
        f = p.view(p.add_buffer(*shape), 0, 1)
        b = p.bf16_view(p.add_bf16_buffer(*shape, pad=1), 0, 1)
        g = p.view(p.add_buffer(*shape), 0, 1)
        p.set_input(f), p.set_output(g)
        p.to_bf16(f, b)
        p.from_bf16(b, g)
        got = p.run(x.reshape(shape))
        np.testing.assert_array_equal(got.ravel(), bf16(x.ravel()).float().numpy())


def test_conv_bf16_rejects_bad_input():
    p = _C.Program(1)
    x = p.bf16_view(p.add_bf16_buffer(1, 4, 4, 3, 1), 0, 3)
    out = p.view(p.add_buffer(1, 4, 4, 2), 0, 2)
    ok = np.zeros((2, 3, 3, 3), F32)
    pads = dict(pad_top=1, pad_left=1)
    with pytest.raises(TypeError, match="float32"):
        p.conv2d_bf16(x, ok.astype(np.float64), out=out, **pads)
    with pytest.raises(ValueError, match="border"):
        p.conv2d_bf16(x, np.zeros((2, 3, 5, 5), F32), out=out, pad_top=2, pad_left=2)
    with pytest.raises(ValueError, match="input channels"):
        p.conv2d_bf16(x, np.zeros((2, 4, 3, 3), F32), out=out, **pads)
    with pytest.raises(ValueError, match="or both"):
        p.conv2d_bf16(x, ok, **pads)
    small = p.bf16_view(p.add_bf16_buffer(1, 3, 4, 2, 0), 0, 2)
    with pytest.raises(ValueError, match="outputs differ"):
        p.conv2d_bf16(x, ok, out=out, out_bf16=small, **pads)
    with pytest.raises(ValueError, match="overlaps"):
        p.conv2d_bf16(x, np.zeros((3, 3, 3, 3), F32), out_bf16=x, **pads)
    with pytest.raises(ValueError, match="does not fit"):
        p.conv2d_bf16(x, ok, out=out, shuffle=2, **pads)
    with pytest.raises(ValueError, match="activation"):
        p.conv2d_bf16(x, ok, out=out, activation="gelu", **pads)
    with pytest.raises(ValueError, match="slope"):
        p.conv2d_bf16(x, ok, out=out, activation="prelu", **pads)
    with pytest.raises(ValueError, match="bias must have 2"):
        p.conv2d_bf16(x, ok, np.zeros(3, F32), out=out, **pads)
    other = _C.Program(1)
    foreign = other.bf16_view(other.add_bf16_buffer(1, 4, 4, 3, 1), 0, 3)
    with pytest.raises(ValueError, match="belong"):
        p.conv2d_bf16(foreign, ok, out=out, **pads)
    with pytest.raises(ValueError, match="no bf16 buffer"):
        p.bf16_view(7, 0, 1)
    u8 = p.add_byte_buffer(1, 4, 4, 3)
    with pytest.raises(ValueError, match="no bf16 buffer"):
        p.bf16_view(u8, 0, 1)  # a uint8 buffer is not a bf16 one
    with pytest.raises(ValueError, match="no byte buffer"):
        p.byte_view(0, 0, 1)  # nor the other way round
    with pytest.raises(ValueError, match="exceed"):
        p.bf16_view(0, 2, 2)
    with pytest.raises(ValueError, match="shapes differ"):
        p.to_bf16(out, x)


def test_every_bf16_family_the_cpu_reports_is_used():
    """cpuid's own words (/proc/cpuinfo) against supported_bf16_isas(), best first: AMX tiles
    where the CPU has amx_bf16 (and the AVX512_BF16 tails it runs with), AVX512_BF16 or
    FEAT_BF16 otherwise; the best is the one bf16 steps use."""
    flags = cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo to read the CPU's features from")
    needs = {"amx": {"amx_tile", "amx_bf16", "avx512_bf16"}, "avx512bf16": {"avx512_bf16"}}
    needs["neon-bf16"] = {"bf16"}
    assert [isa for isa, need in needs.items() if need <= flags] == BF16_AVAILABLE
    assert _C.bf16_isa() == BF16_AVAILABLE[0]


def test_set_bf16_isa_forces_a_family_until_reset():
    before = _C.bf16_isa()
    try:
        _C.set_bf16_isa(BF16_AVAILABLE[-1])
        assert _C.bf16_isa() == BF16_AVAILABLE[-1]
        with pytest.raises(ValueError, match="expected one of"):
            _C.set_bf16_isa("sse9")
        for isa in {"amx", "avx512bf16", "neon-bf16"} - set(BF16_AVAILABLE):
            with pytest.raises(ValueError, match="not supported"):
                _C.set_bf16_isa(isa)
        assert _C.bf16_isa() == BF16_AVAILABLE[-1]  # a refusal changes nothing
    finally:
        _C.set_bf16_isa(None)
    assert _C.bf16_isa() == before


def test_bf16_is_unavailable_below_its_simd_level():
    before = _C.simd_level()
    assert _C.bf16_isa() == BF16_AVAILABLE[0]
    try:
        _C.set_bf16_isa(BF16_AVAILABLE[0])  # forcing a family does not lift the level's cap
        _C.set_simd_level(BELOW)
        assert not _C.bf16_supported() and _C.bf16_isa() == "none"
        assert "bf16" not in get_backend("cpu").precisions()
        p = _C.Program(1)
        x = p.view(p.add_buffer(1, 2, 2, 2), 0, 2)
        xb = p.bf16_view(p.add_bf16_buffer(1, 2, 2, 2), 0, 2)
        with pytest.raises(ValueError, match="avx512_bf16"):
            p.to_bf16(x, xb)
        with pytest.raises(ValueError, match="avx512_bf16"):
            p.conv2d_bf16(xb, np.zeros((2, 2, 1, 1), F32), out=x)
        with pytest.raises(ValueError, match="cannot run bf16 on this machine; it runs fp32, int8"):
            Engine(load("fast_x2"), "cpu", "bf16")
    finally:
        _C.set_bf16_isa(None)
        _C.set_simd_level(before)


def test_fastsr_simd_below_turns_bf16_off():
    code = (
        "from fastsr.api import Upscaler\n"
        "import numpy as np\n"
        "try:\n"
        "    Upscaler('fast_x2', backend='cpu', precision='bf16')(np.zeros((8, 8, 3), np.uint8))\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "FASTSR_SIMD": BELOW}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "cannot run bf16 on this machine; it runs fp32, int8" in out.stdout, out.stderr


def natural_input(graph, h=40, w=56):
    """A crop of a validation image (the shipped models' domain), as the model's input."""
    from fastsr.color import RGB_TO_YCBCR, YCBCR_OFFSET
    from fastsr.data import image_paths, load_rgb
    from fastsr.evaluate import default_data_dir

    paths = image_paths(default_data_dir())
    if not paths:
        pytest.skip(f"no validation images under {default_data_dir()}")
    rgb = load_rgb(paths[0])[:h, :w].astype(F32) / 255
    if graph.input_channels == 1:
        rgb = (rgb @ RGB_TO_YCBCR[0] + YCBCR_OFFSET[0])[..., None]
    return np.ascontiguousarray(rgb[None], F32)


@pytest.mark.parametrize("model", ["fast_x2", "fast_x4", "quality_x2", "quality_x4"])
def test_shipped_model_at_bf16_is_within_60_db_of_eager_fp32(model):
    """bf16 rounds each bf16 layer's input and weights by up to 2^-9 relative; through the
    network that stays near 1e-4 RMS on images in [0, 1] (70-80 dB measured). 60 dB (RMS
    1e-3, a quarter of an 8-bit step) leaves room for other images and still fails on any
    real kernel error, which costs tens of dB."""
    graph = load(model)
    x = natural_input(graph)
    want = Engine(graph, "reference").run(x)
    engine = Engine(graph, "cpu", "bf16", threads=2)
    got = engine.run(x)
    psnr = 10 * np.log10(1 / np.mean((got - want) ** 2))
    assert got.shape == want.shape and psnr > 60, f"{model} bf16: {psnr:.1f} dB"


def test_bf16_plan_bytes_are_what_the_program_allocates():
    graph = load("fast_x2")
    backend = get_backend("cpu")
    plan = make_plan(graph, 1, 20, 28)
    assert (
        backend.plan_bytes(graph, plan, "bf16", 2)
        == backend.compile(graph, plan, "bf16", 2).nbytes
        > backend.plan_bytes(graph, plan, "fp32", 2)
    )


# Convs each model runs in bf16: every one but the first (which reads the image) on AMX;
# elsewhere only those fp32 runs direct, not its Winograd ones (the quality models' body).
BF16_CONVS = {
    "fast_x2": (5, 5),  # (elsewhere, on AMX) of 6 convs
    "fast_x4": (5, 5),
    "quality_x2": (1, 17),  # of 18
    "quality_x4": (1, 17),
}


@pytest.mark.parametrize("model", list(BF16_CONVS))
def test_bf16_layers_are_the_convs_it_runs_faster(bf16_isa, model):
    graph = load(model)
    convs = {n.output: conv_spec(graph, n) for n in graph.nodes if n.op == "conv2d"}
    layers = bf16_layers(graph, convs)
    first = next(n.output for n in graph.nodes if n.inputs[0] == graph.input)
    assert first not in layers
    assert len(layers) == BF16_CONVS[model][bf16_isa == "amx"]


def on_amx_cpu() -> bool:
    return "amx" in BF16_AVAILABLE


@pytest.mark.parametrize("model", ["fast_x2", "quality_x2"])
def test_faster_precisions_order_bf16_by_family(bf16_isa, model):
    """AMX bf16 beats fp32 everywhere and AMX int8 on the fast models, not on quality_x2's
    Winograd body; AVX512_BF16 is slower than fp32 on AMX CPUs (Sapphire Rapids) and
    faster elsewhere (Zen 4), behind int8 (README, precision)."""
    faster = get_backend("cpu").faster_precisions(load(model))
    if bf16_isa == "avx512bf16" and on_amx_cpu():
        assert "bf16" not in faster
        return
    assert "bf16" in faster
    if bf16_isa == "amx" and model.startswith("fast"):
        assert faster[0] == "bf16"
    elif "int8" in faster:
        assert faster.index("int8") < faster.index("bf16")


def test_auto_takes_bf16_when_int8_costs_too_much(bf16_isa):
    from fastsr.quantize import AUTO_BUDGET_DB, auto_precision

    cpu = get_backend("cpu")
    quality = load("quality_x4").copy()  # every shipped int8 is within the budget
    quality.meta["int8"]["psnr_cost_db"] = 2 * AUTO_BUDGET_DB
    assert quality.meta["bf16"]["psnr_cost_db"] < AUTO_BUDGET_DB
    bf16_slow = bf16_isa == "avx512bf16" and on_amx_cpu()
    assert auto_precision(quality, cpu) == ("fp32" if bf16_slow else "bf16")
    costly = quality.copy()
    costly.meta["bf16"]["psnr_cost_db"] = 0.5
    assert auto_precision(costly, cpu) == "fp32"
    # both within the budget: the faster, bf16 on AMX tiles, else int8
    assert auto_precision(load("fast_x2"), cpu) == ("bf16" if bf16_isa == "amx" else "int8")
