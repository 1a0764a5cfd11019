"""GPU throughput: fastsr's Triton backend against eager PyTorch, torch.compile and bicubic.

Skipped without CUDA. Every runner's output is first compared with eager PyTorch in
true fp32 (TF32 off) on the same frame; fastsr must be within 1e-4 in fp32 and 2e-2 in
fp16/bf16, both scaled by the output's magnitude (random-weight nets leave [0, 1]), and
the peers' errors are recorded next to their times. Bicubic is the
floor every SR model must beat on speed, so it is timed but has nothing to match.
Times are per frame, GPU-synchronised, from the median of the rounds.
"""

from __future__ import annotations

import copy
import itertools
from functools import cache

import pytest
import torch
import torch.nn.functional as F

from benchmarks import build_network, case_input

GPU_BENCH = {
    "networks": ["quality_x2", "fast_x2", "quality_x4"],
    "sizes": [[640, 360], [1920, 1080]],  # LR input width, height
    "batch": 1,
    "runners": [
        "fastsr_triton_fp32",
        "fastsr_triton_fp16",
        "fastsr_triton_bf16",
        "torch_eager_fp32",
        "torch_eager_tf32",
        "torch_eager_fp16",
        "torch_compile_fp32",
        "torch_compile_fp16",
        "bicubic",
    ],
    "torch_compile_mode": "max-autotune-no-cudagraphs",
    "timing": {"warmup": 3, "budget_seconds": 2.0, "min_rounds": 5, "max_rounds": 100},
}
DTYPES = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
PARITY = {"fp32": 1e-4, "tf32": 2e-2, "fp16": 2e-2, "bf16": 2e-2}
CASES = list(
    itertools.product(GPU_BENCH["networks"], map(tuple, GPU_BENCH["sizes"]), GPU_BENCH["runners"])
)
NO_CUDA = "needs a CUDA GPU; none on this machine (torch.cuda.is_available() is False)"


@cache
def _fastsr_run(name: str, dtype_name: str, width: int, height: int):
    """run(NHWC float32 cuda) -> NHWC float32, compiled for this frame size."""
    from fastsr.backends.triton import TritonBackend
    from fastsr.engine import make_plan
    from fastsr.graph.from_torch import capture
    from fastsr.graph.passes import optimize

    network = build_network(name)
    graph = optimize(capture(network.module, network.spec.in_channels))
    plan = make_plan(graph, GPU_BENCH["batch"], height, width)
    return TritonBackend(dtype=DTYPES[dtype_name]).compile(graph, plan).run


@cache
def _cuda_module(name: str, dtype_name: str, compiled: bool):
    """A copy on the GPU: the shared CPU module stays float32 for the graph capture."""
    module = copy.deepcopy(build_network(name).module).to("cuda", DTYPES[dtype_name])
    return torch.compile(module, mode=GPU_BENCH["torch_compile_mode"]) if compiled else module


def make_runner(runner: str, name: str, width: int, height: int):
    """(feed: NCHW float32 cpu -> input, run: input -> output, fetch: output -> NCHW fp32 cpu)."""
    family, dtype_name = runner.rsplit("_", 1) if runner != "bicubic" else ("bicubic", "fp32")
    dtype = DTYPES[dtype_name]
    if family == "fastsr_triton":
        run = _fastsr_run(name, dtype_name, width, height)
        return (
            lambda x: x.permute(0, 2, 3, 1).contiguous().cuda(),
            run,
            lambda y: y.permute(0, 3, 1, 2).float().cpu(),
        )
    if family == "bicubic":
        scale = build_network(name).spec.scale
        return (
            lambda x: x.cuda(),
            lambda x: F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False),
            None,
        )
    module = _cuda_module(name, dtype_name, compiled=family == "torch_compile")
    return lambda x: x.cuda().to(dtype), module, lambda y: y.float().cpu()


def _set_tf32(enabled: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


@cache
def fp32_reference(name: str, width: int, height: int) -> torch.Tensor:
    network = build_network(name)
    x = case_input(GPU_BENCH["batch"], network.spec.in_channels, height, width)
    _set_tf32(False)
    with torch.inference_mode():
        return _cuda_module(name, "fp32", compiled=False)(x.cuda()).cpu()


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize(
    "name,size,runner", CASES, ids=[f"{n}-{w}x{h}-{r}" for n, (w, h), r in CASES]
)
def test_gpu_throughput(benchmark, name, size, runner):
    width, height = size
    network = build_network(name)
    reference = fp32_reference(name, width, height)
    _set_tf32(runner.endswith("tf32"))
    feed, run, fetch = make_runner(runner, name, width, height)
    x = feed(case_input(GPU_BENCH["batch"], network.spec.in_channels, height, width))

    def call():
        with torch.inference_mode():
            out = run(x)
        torch.cuda.synchronize()
        return out

    timing = GPU_BENCH["timing"]
    for _ in range(timing["warmup"]):  # autotuning, torch.compile, cuDNN heuristics
        out = call()
    if fetch is not None:
        bound = PARITY[runner.rsplit("_", 1)[1]] * max(1.0, float(reference.abs().max()))
        error = float((fetch(out) - reference).abs().max())
        benchmark.extra_info.update(max_err=error, parity_bound=bound)
        if runner.startswith("fastsr"):  # peers are timed whatever their error; we are not
            assert error <= bound, f"{runner} vs eager fp32: max |err| {error:.3g} > {bound:.3g}"

    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    call()
    end.record()
    torch.cuda.synchronize()
    first = start.elapsed_time(end) / 1e3
    rounds = int(
        min(
            max(timing["budget_seconds"] / max(first, 1e-6), timing["min_rounds"]),
            timing["max_rounds"],
        )
    )
    benchmark.group = f"gpu {name} {width}x{height}"
    benchmark.pedantic(call, rounds=rounds, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable
        return
    seconds = benchmark.stats.stats.median / GPU_BENCH["batch"]
    gflop = network.gflop_per_pixel * width * height
    benchmark.extra_info.update(
        kind="gpu",
        model=name,
        runner=runner,
        width=width,
        height=height,
        fps=1 / seconds,
        gflops=gflop / seconds,
        device=torch.cuda.get_device_name(),
    )
