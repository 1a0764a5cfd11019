"""The headline CPU comparison: 64-channel 8-block SRNet x2 on one 640x360 frame, fastsr's
C++ backend against eager PyTorch and ONNX Runtime in the same run, 2 threads, fp32.

Every runner is checked against eager PyTorch before it is timed; the fastsr row (run
last) records its speed-up over the others. Quick mode (plain pytest) uses a tiny frame.
"""

from __future__ import annotations

import pytest

from benchmarks import ModelCase, build_network, case_input, first_call, headline_network, peers

SIZE = {"quick": (32, 24), "full": (640, 360)}  # LR width, height
RUNNERS = ["torch_eager", "onnxruntime", "fastsr_cpu"]  # fastsr last: it reads the others
_median_seconds: dict[str, float] = {}


@pytest.mark.parametrize("runner_name", RUNNERS)
def test_srnet_frame_time(benchmark, timed, quick, threads, runner_name):
    reason = peers.unavailable(runner_name)
    if reason is not None:
        pytest.skip(reason)
    width, height = SIZE["quick" if quick else "full"]
    name = headline_network()  # srnet64x8_x2, or the shipped model with its architecture
    case = ModelCase(name, width, height, 1)
    network = build_network(name)
    runner = peers.make_runner(runner_name, network, threads)
    frames = runner.feed(case_input(1, network.in_channels, height, width))
    output, seconds = first_call(runner.run, frames)
    reference = peers.eager_reference(network, case)
    max_err = peers.max_abs_error(runner.fetch(output), reference)
    assert max_err <= peers.parity_bound(reference), f"{runner_name}: max |err| {max_err:.3g}"

    timed(runner.run, frames, seconds)
    median = benchmark.stats.stats.median
    _median_seconds[runner_name] = median
    gflop = network.gflop_per_pixel * width * height
    benchmark.group = f"cpu {name} {width}x{height}"
    benchmark.extra_info.update(
        kind="cpu_srnet",
        runner=runner_name,
        threads=threads,
        gflop_per_frame=gflop,
        gflops=gflop / median,
        max_err=max_err,
    )
    if runner_name == "fastsr_cpu":
        benchmark.extra_info.update(
            {
                f"speedup_vs_{other}": t / median
                for other, t in _median_seconds.items()
                if other != runner_name
            }
        )
