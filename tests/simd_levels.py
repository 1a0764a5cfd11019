"""The SIMD levels of the C++ backend, and a fixture that runs a test at each one this
CPU has (the others skip, saying why)."""

import pytest

from fastsr import _C

LEVELS = ["portable", "avx2", "avx512", "neon"]
AVAILABLE = _C.supported_simd_levels()


@pytest.fixture(params=LEVELS)
def simd(request):
    if request.param not in AVAILABLE:
        pytest.skip(f"{request.param} not supported by this CPU")
    before = _C.simd_level()
    _C.set_simd_level(request.param)
    yield request.param
    _C.set_simd_level(before)
