"""Cost against input pixels (180p to 1080p) on 1 and 2 threads: a fully convolutional net
should cost the same per pixel at every size, and two threads should halve it."""

from __future__ import annotations

import pytest
import torch

from benchmarks import ModelCase, build_network, case_input, config, first_call, peers

SCALING = config()["scaling"]


@pytest.fixture
def thread_count(request, threads):
    """Sets torch's pool to the case's thread count and restores the suite's afterwards."""
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(threads)


@pytest.mark.parametrize("runner_name", SCALING["runners"])
@pytest.mark.parametrize("thread_count", SCALING["threads"], indirect=True, ids=lambda n: f"t{n}")
def test_scaling(benchmark, timed, scaling_size, thread_count, runner_name):
    reason = peers.unavailable(runner_name)
    if reason is not None:
        pytest.skip(reason)
    try:
        network = build_network(SCALING["model"])
    except (ValueError, TypeError, KeyError) as error:
        pytest.skip(f"scaling model {SCALING['model']} cannot be built: {error}")
    width, height = scaling_size
    case = ModelCase(SCALING["model"], width, height, 1)
    runner = peers.make_runner(runner_name, network, thread_count)
    frames = runner.feed(case_input(1, network.in_channels, height, width))
    output, seconds = first_call(runner.run, frames)
    reference = peers.eager_reference(network, case)
    max_err = peers.max_abs_error(runner.fetch(output), reference)

    benchmark.group = f"scaling {SCALING['model']} {runner_name}"
    benchmark.extra_info.update(
        kind="scaling",
        model=SCALING["model"],
        runner=runner_name,
        width=width,
        height=height,
        batch=1,
        pixels=width * height,
        threads=thread_count,
        gflop_per_frame=network.gflop_per_pixel * width * height,
        max_err=max_err,
    )
    assert max_err <= peers.parity_bound(reference), f"{runner_name} drifts: {max_err:.3g}"
    timed(runner.run, frames, seconds)
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(ms_per_megapixel=1e3 * median / (width * height / 1e6))
