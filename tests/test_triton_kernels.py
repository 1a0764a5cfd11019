"""Each Triton kernel against the torch op it replaces, in the interpreter on CPU.

Shapes are tiny and odd (the interpreter pays per program instance); every launch
still covers partial tiles and the borders. fp32 must match within 1e-4; fp16/bf16
(fp32 accumulation, output rounded to the narrow type) within 2e-2 plus a relative
term for the output rounding of values of a few units.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastsr.backends import get_backend

pytestmark = pytest.mark.skipif(
    get_backend("triton").availability() is not None,
    reason=f"triton backend unavailable: {get_backend('triton').availability()}",
)

from fastsr.kernels import elementwise, pool, resize  # noqa: E402
from fastsr.kernels.conv2d import conv2d, pack_conv2d  # noqa: E402
from fastsr.kernels.conv_transpose2d import conv_transpose2d, pack_conv_transpose2d  # noqa: E402
from fastsr.kernels.epilogue import Epilogue  # noqa: E402

TOLERANCE = {torch.float32: (1e-4, 0.0), torch.float16: (2e-2, 1e-2),
             torch.bfloat16: (2e-2, 1e-2)}
ACTIVATION_REFERENCE = {
    "none": lambda y, slope: y,
    "relu": lambda y, slope: torch.relu(y),
    "prelu": lambda y, slope: F.prelu(y, slope),
    "leaky_relu": lambda y, slope: F.leaky_relu(y, 0.2),
    "tanh": lambda y, slope: torch.tanh(y),
    "sigmoid": lambda y, slope: torch.sigmoid(y),
    "silu": lambda y, slope: F.silu(y),
}


# Kernels run on the GPU when there is one, else in the interpreter on CPU tensors;
# references are always computed on the CPU in float32.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def on_device(*tensors: torch.Tensor):
    moved = tuple(t.to(DEVICE) for t in tensors)
    return moved if len(moved) > 1 else moved[0]


def empty(*shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=DEVICE)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous().to(DEVICE)


def nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).float().cpu()


def upscale(x: torch.Tensor, mode: str, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode=mode,
                         align_corners=None if mode == "nearest" else False)


def assert_matches(got: torch.Tensor, expected: torch.Tensor, dtype=torch.float32):
    atol, rtol = TOLERANCE[dtype]
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol)


# (cin, cout, kernel, stride, padding, dilation, input size): body, 1-channel image
# input (taps gathered along K), channel counts off the tile grid, strided, dilated.
CONV_SHAPES = {
    "body_3x3": (16, 16, 3, 1, 1, 1, (19, 23)),
    "image_input_5x5": (1, 8, 5, 1, 2, 1, (9, 11)),
    "rgb_input_9x9": (3, 4, 9, 1, 4, 1, (7, 9)),
    "odd_channels": (20, 12, 3, 1, 1, 1, (7, 9)),
    "strided_6x6": (4, 4, 6, 2, 2, 1, (8, 10)),
    "dilated": (8, 8, 3, 1, 2, 2, (9, 11)),
    "pointwise_on_1x1": (8, 2, 1, 1, 0, 1, (1, 1)),
}


@pytest.mark.parametrize("shape", sorted(CONV_SHAPES))
def test_conv2d_matches_torch(shape):
    cin, cout, k, stride, pad, dil, (h, w) = CONV_SHAPES[shape]
    torch.manual_seed(0)
    x = torch.randn(2, cin, h, w)
    weight, bias = torch.randn(cout, cin, k, k) / k, torch.randn(cout)
    expected = F.conv2d(x, weight, bias, stride, pad, dil)
    layer = pack_conv2d(*on_device(weight, bias), stride, (pad, pad), (dil, dil), torch.float32)
    out = empty(*nhwc(expected).shape)
    assert_matches(nchw(conv2d(layer, nhwc(x), out, Epilogue())), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("activation,shuffle,skip", [
    ("prelu", 2, "bicubic"),
    ("relu", 4, "bicubic"),
    ("tanh", 3, "bilinear"),
    ("sigmoid", 2, "nearest"),
    ("silu", 1, "none"),
    ("leaky_relu", 1, "same"),
    ("none", 2, "none"),
])
def test_conv2d_epilogue_matches_torch(activation, shuffle, skip, dtype):
    """act(conv + bias), pixel-shuffled by the store, plus a (resized) skip."""
    torch.manual_seed(1)
    cin, cout, h, w = 16, 3 * shuffle * shuffle, 7, 9
    x, low_res = torch.randn(1, cin, h, w), torch.rand(1, 3, h, w)
    weight, bias, slope = torch.randn(cout, cin, 3, 3) / 6, torch.randn(cout), torch.rand(cout)
    y = F.conv2d(x, weight, bias, 1, 1)
    y = F.pixel_shuffle(ACTIVATION_REFERENCE[activation](y, slope), shuffle)
    skip_nchw = {"none": None, "same": torch.randn_like(y)}.get(skip, low_res)
    if skip_nchw is not None:
        y = y + (skip_nchw if skip == "same" else upscale(low_res, skip, shuffle))
    layer = pack_conv2d(*on_device(weight, bias), 1, (1, 1), (1, 1), dtype)
    epilogue = Epilogue(activation, on_device(slope) if activation == "prelu" else None, 0.2,
                        shuffle, skip)
    out = empty(*nhwc(y).shape, dtype=dtype)
    skip_in = None if skip_nchw is None else nhwc(skip_nchw)
    conv2d(layer, nhwc(x).to(dtype), out, epilogue, skip_in)
    assert_matches(nchw(out), y, dtype)


# (cin, cout, kernel, stride, padding, output_padding): DBPN-style 6x6/2, FSRCNN 9x9/3
# to one channel, and a 3x3/2 whose phases have different numbers of taps.
CONV_TRANSPOSE_SHAPES = {
    "dbpn_6x6_s2": (4, 4, 6, 2, 2, 0),
    "fsrcnn_9x9_s3": (12, 1, 9, 3, 4, 2),
    "uneven_taps_3x3_s2": (20, 3, 3, 2, 1, 1),
}


@pytest.mark.parametrize("shape", sorted(CONV_TRANSPOSE_SHAPES))
def test_conv_transpose2d_matches_torch(shape):
    cin, cout, k, stride, pad, out_pad = CONV_TRANSPOSE_SHAPES[shape]
    torch.manual_seed(2)
    x, weight, bias = torch.randn(2, cin, 5, 7), torch.randn(cin, cout, k, k) / k, torch.randn(cout)
    slope = torch.rand(cout)
    expected = F.prelu(F.conv_transpose2d(x, weight, bias, stride, pad, out_pad), slope)
    layer = pack_conv_transpose2d(*on_device(weight, bias), stride, (pad, pad), torch.float32)
    out = empty(*nhwc(expected).shape)
    conv_transpose2d(layer, nhwc(x), out, Epilogue("prelu", on_device(slope)))
    assert_matches(nchw(out), expected)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("factor", [2, 3])
def test_resize_matches_interpolate(mode, factor):
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(3))
    expected = upscale(x, mode, factor)
    out = empty(*nhwc(expected).shape)
    assert_matches(nchw(resize.resize(nhwc(x), out, mode, factor)), expected)


@pytest.mark.parametrize("h,w", [(5, 7), (300, 9)])  # 300 x 9: two bands of partial sums
def test_global_avg_pool_matches_mean(h, w, monkeypatch):
    for target in pool.POOL:
        monkeypatch.setitem(pool.POOL[target], "ROWS", 2048)
    x = torch.randn(2, 6, h, w)
    out = empty(2, 1, 1, 6)
    assert_matches(nchw(pool.global_avg_pool(nhwc(x), out)), x.mean((2, 3), keepdim=True))


@pytest.mark.parametrize("gates,skip", [(6, False), (1, False), (6, True)])
def test_scale_channels_matches_broadcast_mul(gates, skip):
    x, gate, residual = torch.randn(2, 6, 5, 7), torch.rand(2, gates, 1, 1), torch.randn(2, 6, 5, 7)
    out = empty(2, 5, 7, 6)
    got = pool.scale_channels(nhwc(x), nhwc(gate), out, nhwc(residual) if skip else None)
    assert_matches(nchw(got), x * gate + residual if skip else x * gate)


@pytest.mark.parametrize("op", ["add", "mul"])
def test_binary_matches_torch(op):
    a, b = torch.randn(2, 5, 7, 6), torch.randn(2, 5, 7, 6)
    expected = a + b if op == "add" else a * b
    got = elementwise.binary(op, *on_device(a, b), empty(*a.shape))
    assert_matches(got.cpu(), expected)


@pytest.mark.parametrize("activation", ["none", "prelu", "tanh", "clamp", "silu"])
def test_affine_activation_matches_torch(activation):
    x = torch.randn(2, 6, 5, 7)
    scale, shift, slope = torch.randn(6), torch.randn(6), torch.rand(6)
    y = x * scale.view(1, 6, 1, 1) + shift.view(1, 6, 1, 1)
    expected = torch.clamp(y, -0.5, 1.5) if activation == "clamp" else (
        ACTIVATION_REFERENCE[activation](y, slope))
    out = empty(2, 5, 7, 6)
    elementwise.affine_activation(nhwc(x), out, *on_device(scale, shift), activation,
                                  on_device(slope) if activation == "prelu" else None, 0.0,
                                  -0.5, 1.5)
    assert_matches(nchw(out), expected)


def test_pixel_shuffle_matches_torch():
    x = torch.randn(2, 12, 5, 7)
    out = empty(2, 10, 14, 3)
    assert_matches(nchw(elementwise.pixel_shuffle(nhwc(x), out, 2)), F.pixel_shuffle(x, 2))


@pytest.mark.parametrize("factor", [2, 4])
def test_pixel_unshuffle_matches_torch(factor):
    x = torch.randn(2, 3, 5 * factor, 3 * factor)
    out = empty(2, 5, 3, 3 * factor * factor)
    assert_matches(nchw(elementwise.pixel_unshuffle(nhwc(x), out, factor)),
                   F.pixel_unshuffle(x, factor))


def test_concat_matches_cat():
    parts = [torch.randn(2, c, 5, 7) for c in (4, 3, 5)]
    out = empty(2, 5, 7, 12)
    elementwise.concat([nhwc(p) for p in parts], out)
    assert_matches(nchw(out), torch.cat(parts, 1))
