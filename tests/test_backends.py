"""The one harness: every backend, every op case, against the reference backend.

The reference backend itself is checked against eager PyTorch here, before and after
the optimisation passes, so every other backend is transitively checked against torch.
"""

from __future__ import annotations

import pytest
import torch
from op_cases import OP_CASES, build_case, case_size

from fastsr.backends import backend_status
from fastsr.backends.reference import run_graph
from fastsr.engine import Engine
from fastsr.graph.from_torch import capture
from fastsr.graph.passes import optimize

STATUS = backend_status()
# Per backend: absolute tolerance vs the reference, and input sizes (H, W) to run.
# Triton runs in its interpreter here, which is slow, so it gets one tiny odd size.
BACKEND_CASES = {
    "cpu": (1e-4, [(37, 53), (8, 8)]),
    "triton": (1e-4, [(7, 9)]),
}


def _input(channels: int, h: int, w: int, batch: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(h * 1000 + w)
    return torch.rand(batch, h, w, channels, generator=generator)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_reference_backend_matches_eager_torch_before_and_after_passes(case):
    module, channels = build_case(case)
    graph = capture(module, channels)
    x = _input(channels, *case_size(case, 13, 10)).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = module(x)
        before = run_graph(graph, x)
        after = run_graph(optimize(graph), x)
    torch.testing.assert_close(before, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)


def _simd_levels(backend: str) -> list[str | None]:
    """The CPU backend runs at every SIMD level this CPU has (best first); others once."""
    if backend != "cpu" or STATUS.get("cpu"):
        return [None]
    from fastsr import _C

    return _C.supported_simd_levels()


def _backend_params():
    params = []
    for backend, (tolerance, sizes) in BACKEND_CASES.items():
        reason = STATUS.get(backend)
        marks = (
            [pytest.mark.skip(reason=f"{backend} backend unavailable: {reason}")]
            if (reason)
            else []
        )
        for simd in _simd_levels(backend):
            name = f"{backend}-{simd}" if simd else backend
            for case in sorted(OP_CASES):
                for h, w in sizes:
                    params.append(
                        pytest.param(
                            backend,
                            simd,
                            case,
                            h,
                            w,
                            tolerance,
                            marks=marks,
                            id=f"{name}-{case}-{h}x{w}",
                        )
                    )
    return params


@pytest.fixture
def simd_level(request):
    """Sets the C++ backend's SIMD level for the test (None: leave it) and restores it."""
    level = request.param
    if level is None:
        yield None
        return
    from fastsr import _C

    before = _C.simd_level()
    _C.set_simd_level(level)
    yield level
    _C.set_simd_level(before)


@pytest.mark.parametrize(
    "backend,simd_level,case,h,w,tolerance", _backend_params(), indirect=["simd_level"]
)
def test_backend_matches_reference(backend, simd_level, case, h, w, tolerance):
    module, channels = build_case(case)
    graph = capture(module, channels)
    x = _input(channels, *case_size(case, h, w), batch=2 if backend != "triton" else 1)
    expected = Engine(graph, "reference").run(x)
    got = Engine(graph, backend).run(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=0)


@pytest.mark.parametrize("simd_level", _simd_levels("cpu"), indirect=True)
def test_winograd_case_runs_winograd_on_cpu(simd_level):
    """winograd_block's 32/48-channel 3x3 convs take the Winograd path at this level."""
    if STATUS.get("cpu"):
        pytest.skip(f"cpu backend unavailable: {STATUS['cpu']}")
    from fastsr import _C

    for cin, cout in [(32, 48), (48, 32)]:
        assert _C.winograd_fits(cin, cout, 3, 3, 1, 1, 1, 1)
