"""pytest plumbing of the suite: quick or full mode, fixed threads, the cases, timing, and
machine facts (FMA peak, versions, load) written into the benchmark JSON."""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import pytest
import torch

from benchmarks import (
    bench_threads,
    by_mode,
    config,
    mode,
    model_cases,
    selected_runners,
    selected_sizes,
)
from benchmarks.report import comparison

# Modules only the sweep (FASTSR_BENCH_SWEEP=1) times; plain `pytest` still runs them tiny.
SWEEP_ONLY = {"bench_cpu_conv", "bench_scaling", "bench_memory", "bench_scale_out"}


def is_quick(pytest_config) -> bool:
    """Real sizes only under --benchmark-only; plain `pytest` (CI) runs tiny sizes once."""
    return not pytest_config.getoption("benchmark_only", False)


def pytest_collection_modifyitems(config, items):
    if mode(is_quick(config)) != "full":
        return
    sweep_only = [item for item in items if item.module.__name__.split(".")[-1] in SWEEP_ONLY]
    if sweep_only:
        config.hook.pytest_deselected(items=sweep_only)
        items[:] = [item for item in items if item not in sweep_only]


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    """After pytest-benchmark's tables: the engines and precisions side by side."""
    session = getattr(config, "_benchmarksession", None)
    if is_quick(config) or session is None:
        return
    entries = [b.as_dict(include_data=False) for b in session.benchmarks if b.stats]
    tables = comparison({"benchmarks": entries})
    if tables:
        terminalreporter.write_sep("=", "fastsr against its peers")
        terminalreporter.write_line(
            f"{_cpu_model()}, {_simd_level()} SIMD, {bench_threads()} threads, load "
            f"{os.getloadavg()[0]:.1f}; medians; mode {mode(False)}"
        )
        terminalreporter.write_line(tables)


def pytest_configure(config):
    torch.set_num_threads(bench_threads())
    try:  # OpenCV keeps its own pool
        import cv2

        cv2.setNumThreads(bench_threads())
    except ImportError:
        pass


def pytest_generate_tests(metafunc):
    quick = is_quick(metafunc.config)
    names = metafunc.fixturenames
    if "model_case" in names:
        runners = selected_runners(quick)
        pairs = [(case, runner) for case in model_cases(quick) for runner in runners]
        metafunc.parametrize(
            ("model_case", "runner_name"), pairs, ids=[f"{c.label}-{r}" for c, r in pairs]
        )
    if "bicubic_size" in names:
        sizes = selected_sizes(by_mode(config()["bicubic"]["sizes"], quick), quick)
        metafunc.parametrize("bicubic_size", sizes, ids=[f"{w}x{h}" for w, h in sizes])
    if "scaling_size" in names:
        sizes = by_mode(config()["scaling"]["sizes"], quick)
        metafunc.parametrize("scaling_size", sizes, ids=[f"{w}x{h}" for w, h in sizes])


@pytest.fixture(scope="session")
def quick(request) -> bool:
    return is_quick(request.config)


@pytest.fixture(scope="session")
def threads() -> int:
    return bench_threads()


@pytest.fixture
def timed(benchmark, quick):
    """time_calls(fn, arg, first_seconds): one round in quick mode; in full mode as many
    rounds as fit the time budget, judged by the untimed first call."""

    def time_calls(fn, arg, first_seconds: float):
        if quick:
            return benchmark.pedantic(fn, args=(arg,), rounds=1, iterations=1)
        timing = config()["timing"]
        fit = int(timing["budget_seconds"] / max(first_seconds, 1e-6))
        rounds = min(max(fit, timing["min_rounds"]), timing["max_rounds"])
        return benchmark.pedantic(fn, args=(arg,), rounds=rounds, iterations=1)

    return time_calls


# -- machine facts -------------------------------------------------------------------------


def fma_peak(threads: int) -> tuple[float, str]:
    """GFLOP/s the machine's FMA units reach (best of 3: the host is shared), and the source."""
    override = os.environ.get("FASTSR_FMA_PEAK_GFLOPS")
    if override:
        return float(override), "FASTSR_FMA_PEAK_GFLOPS"
    try:
        from fastsr._C import fma_peak_gflops
    except ImportError:
        return matmul_estimate(), "estimate: numpy sgemm 2048^3 (below the true FMA peak)"
    best = max(fma_peak_gflops(threads) for _ in range(3))
    return best, f"fastsr._C.fma_peak_gflops FMA loop, {threads} threads, best of 3"


def matmul_estimate(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _versions() -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for module in ("onnxruntime", "PIL", "cv2", "onnx", "openvino", "nncf"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = "not installed"
    return versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _simd_level() -> str:
    try:
        from fastsr import _C

        return _C.simd_level()
    except (ImportError, AttributeError):
        return "unknown"


def pytest_benchmark_update_machine_info(config, machine_info):
    threads = bench_threads()
    peak, source = fma_peak(threads)
    machine_info["fastsr"] = {
        "threads": threads,
        "fma_peak_gflops": peak,
        "fma_peak_source": source,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_1min": os.getloadavg()[0],
        "simd_level": _simd_level(),
        "mode": mode(is_quick(config)),
        "versions": _versions(),
    }
