"""The AMX int8 kernels (TDPBUSD tiles), bit for bit against the numpy integer reference on
shapes that fill tiles, with pixel and channel tails, beside the avx512vnni and portable
levels on the same cases: integer accumulation is exact, so all three must agree."""

from __future__ import annotations

import numpy as np
import pytest
from simd_levels import AVAILABLE, cpu_flags
from test_int8_kernels import (
    conv_int8_ref,
    expected_family,
    quantize_ref,
    random_case,
    run_conv_int8,
)

from fastsr import _C

HAS_AMX = {"amx_tile", "amx_int8", "avx512_vnni"} <= cpu_flags()


@pytest.mark.parametrize(
    "n,h,w,cin,cout,k,stride,dilation",
    [
        (1, 4, 16, 32, 16, 3, 1, 1),  # one tile exactly, at the channel threshold
        (1, 3, 35, 64, 12, 3, 1, 1),  # a partly filled weight tile (quality_x2's last conv)
        (1, 3, 32, 64, 8, 3, 1, 1),  # 8 output channels: AVX-VNNI's lanes, not a tile
        (1, 3, 33, 48, 33, 3, 1, 1),  # 12-quad chunks, two pixel blocks and a 1-pixel tail
        (2, 3, 47, 64, 64, 3, 1, 1),  # full 16-quad chunks, four vectors
        (1, 3, 70, 96, 48, 1, 1, 1),  # two chunks per tap, odd vector count
        (1, 5, 37, 128, 80, 3, 2, 1),  # stride 2, two channel groups
        (1, 4, 40, 40, 24, 3, 1, 2),  # dilation 2, 10-quad chunks
        (1, 3, 20, 34, 17, 3, 1, 1),  # channels not a multiple of 4
        (1, 3, 12, 64, 64, 3, 1, 1),  # narrower than a tile: the VNNI tiles alone
        (1, 3, 40, 16, 32, 5, 1, 1),  # below the threshold: the VNNI kernel
    ],
)
def test_conv_int8_amx_bit_exact(int8_isa, n, h, w, cin, cout, k, stride, dilation):
    x, wq, w_scale, bias, _ = random_case(cin + cout + w, n, h, w, cin, cout, k)
    pad = dilation * (k // 2)
    got, family = run_conv_int8(
        x, wq, w_scale, bias, x_scale=0.02, x_zero=131, stride=stride, pad=pad, dilation=dilation
    )
    assert family == expected_family(int8_isa, cout, cin)
    q = quantize_ref(x, 0.02, 131)
    want = conv_int8_ref(q, 131, wq, 0.02, w_scale, bias, stride, pad, dilation, "none", None, 0)
    np.testing.assert_array_equal(got, want)


def test_amx_is_chosen_where_the_cpu_has_it():
    before = _C.simd_level()
    try:
        if "avx512" in AVAILABLE:
            _C.set_simd_level("avx512")
            assert (_C.int8_isa() == "amx") == HAS_AMX
            _C.set_int8_isa("avx512vnni")
            assert _C.int8_isa() == "avx512vnni"
            _C.set_int8_isa(None)
        _C.set_simd_level("avx2" if "avx2" in AVAILABLE else "portable")
        assert _C.int8_isa() != "amx"
    finally:
        _C.set_int8_isa(None)
        _C.set_simd_level(before)
