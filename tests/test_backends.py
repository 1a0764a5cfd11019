"""The one harness: every backend, every op case, against the reference backend.

The reference backend itself is checked against eager PyTorch here, before and after
the optimisation passes, so every other backend is transitively checked against torch.
"""

from __future__ import annotations

import pytest
import torch
from op_cases import OP_CASES, build_case

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
    x = _input(channels, 13, 10).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = module(x)
        before = run_graph(graph, x)
        after = run_graph(optimize(graph), x)
    torch.testing.assert_close(before, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)


def _backend_params():
    params = []
    for backend, (tolerance, sizes) in BACKEND_CASES.items():
        reason = STATUS.get(backend)
        marks = [pytest.mark.skip(reason=f"{backend} backend unavailable: {reason}")] if (
            reason
        ) else []
        for case in sorted(OP_CASES):
            for h, w in sizes:
                params.append(
                    pytest.param(backend, case, h, w, tolerance, marks=marks,
                                 id=f"{backend}-{case}-{h}x{w}")
                )
    return params


@pytest.mark.parametrize("backend,case,h,w,tolerance", _backend_params())
def test_backend_matches_reference(backend, case, h, w, tolerance):
    module, channels = build_case(case)
    graph = capture(module, channels)
    x = _input(channels, h, w, batch=2 if backend != "triton" else 1)
    expected = Engine(graph, "reference").run(x)
    got = Engine(graph, backend).run(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=0)
