"""Shipped models at fp32 and int8 on the CPU backend, one group per model so the rows
compare in the same run; each int8 run is first checked against fp32 (> 40 dB)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fastsr.engine import Engine
from fastsr.graph import load

MODELS = ("fast_x2", "fast_x4", "quality_x2")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("model", MODELS)
def test_int8_speed(benchmark, timed, quick, threads, model, precision):
    graph = load(model)
    if "int8" not in graph.meta:
        pytest.skip(f"{model} ships no int8 calibration (python -m fastsr.quantize)")
    height, width = (36, 64) if quick else (360, 640)
    x = np.random.default_rng(0).random((1, height, width, graph.input_channels), np.float32)
    engine = Engine(graph, "cpu", precision, threads=threads)
    start = time.perf_counter()
    y = engine.run(x)
    first = time.perf_counter() - start
    reference = Engine(graph, "cpu", "fp32", threads=threads).run(x)
    psnr = 10 * np.log10(1 / max(float(np.mean((y - reference) ** 2)), 1e-12))
    assert psnr > 40, f"{model} int8 strays from fp32: {psnr:.1f} dB"
    compiled = engine.compiled(1, height, width)
    benchmark.group = f"{model} {width}x{height} cpu fp32 vs int8"
    benchmark.extra_info.update(
        kind="precision", model=model, precision=precision, width=width, height=height,
        threads=threads, psnr_vs_fp32=psnr,
        set5_psnr_cost_db=graph.meta["int8"].get("psnr_cost_db"),
    )  # fmt: skip
    timed(lambda _: compiled.program.run_steps(), None, first)
