"""The SIMD levels of the C++ backend and its int8 and bf16 kernel families, and fixtures
that run a test at each one this CPU has (the others skip, saying why)."""

from pathlib import Path

import pytest

from fastsr import _C

LEVELS = ["portable", "avx2", "avx512", "neon"]
AVAILABLE = _C.supported_simd_levels()
INT8_ISAS = ["portable", "avx2", "avxvnni", "avx512vnni", "amx", "neon", "neon-dotprod"]
INT8_AVAILABLE = _C.supported_int8_isas()
BF16_ISAS = ["amx", "avx512bf16", "neon-bf16"]
BF16_AVAILABLE = _C.supported_bf16_isas()
BF16_FLAGS = {"amx": "amx_bf16", "avx512bf16": "avx512_bf16", "neon-bf16": "bf16"}


@pytest.fixture(params=LEVELS)
def simd(request):
    if request.param not in AVAILABLE:
        pytest.skip(f"{request.param} not supported by this CPU")
    before = _C.simd_level()
    _C.set_simd_level(request.param)
    yield request.param
    _C.set_simd_level(before)


@pytest.fixture(params=INT8_ISAS)
def int8_isa(request):
    """Every int8 step added in the test uses this kernel family (quantize included)."""
    reason = f"int8 {request.param} not supported by this CPU"
    yield from _forced(request.param, INT8_AVAILABLE, _C.set_int8_isa, _C.int8_isa, reason)


@pytest.fixture(params=BF16_ISAS)
def bf16_isa(request):
    """Every bf16 step added in the test uses this kernel family (where a layer fits it)."""
    flag = BF16_FLAGS[request.param]
    reason = f"bf16 {request.param} not supported by this CPU (needs {flag})"
    yield from _forced(request.param, BF16_AVAILABLE, _C.set_bf16_isa, _C.bf16_isa, reason)


def _forced(family, available, set_family, active, reason):
    """Forces a kernel family for one test, asserting it took; skips where the CPU lacks it."""
    if family not in available:
        pytest.skip(reason)
    set_family(family)
    try:
        assert active() == family
        yield family
    finally:
        set_family(None)


def cpu_flags() -> set[str]:
    """The kernel's CPU feature names (x86 `flags`, AArch64 `Features`); empty without
    /proc/cpuinfo."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    lines = [line for line in text.splitlines() if line.startswith(("flags", "Features"))]
    return set(lines[0].split(":", 1)[1].split()) if lines else set()
