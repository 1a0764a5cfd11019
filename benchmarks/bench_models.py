"""Throughput of every network on every engine, each run first checked against eager PyTorch.

A fast wrong answer is a failure: the benchmark asserts parity before it times anything.
"""

from __future__ import annotations

import pytest

from benchmarks import ModelCase, build_network, case_input, first_call, max_gflop_per_call, peers


def network_or_skip(name: str):
    try:
        return build_network(name)
    except (ValueError, TypeError, KeyError) as error:
        pytest.skip(f"network {name} cannot be built here: {error}")


def test_model_throughput(benchmark, timed, quick, threads, model_case: ModelCase, runner_name):
    case = model_case
    reason = peers.unavailable(runner_name)
    if reason is not None:
        pytest.skip(reason)
    network = network_or_skip(case.network)
    gflop_per_frame = network.gflop_per_pixel * case.width * case.height
    if not quick and gflop_per_frame * case.batch > max_gflop_per_call():
        pytest.skip(
            f"{gflop_per_frame * case.batch:.0f} GFLOP per call is over the sweep's cap of "
            f"{max_gflop_per_call():.0f} (raise FASTSR_BENCH_MAX_GFLOP to include it)"
        )

    runner = peers.make_runner(runner_name, network, threads)
    frames = runner.feed(case_input(case.batch, network.in_channels, case.height, case.width))
    # Warm-up (plans, packs weights, allocates); its time also sizes the number of rounds.
    output, seconds = first_call(runner.run, frames)
    reference = peers.eager_reference(network, case)
    max_err = peers.max_abs_error(runner.fetch(output), reference)
    bound = peers.parity_bound(reference)

    benchmark.group = f"{case.network} {case.width}x{case.height} batch {case.batch}"
    benchmark.extra_info.update(
        kind="model",
        model=case.network,
        runner=runner_name,
        width=case.width,
        height=case.height,
        batch=case.batch,
        scale=network.spec.scale,
        weights=network.spec.weights,
        headline=network.spec.headline,
        threads=threads,
        gflop_per_frame=gflop_per_frame,
        max_err=max_err,
        parity_bound=bound,
        ref_absmax=float(reference.abs().max()),
    )
    assert max_err <= bound, (
        f"{runner_name} drifts from eager PyTorch on {case.label}: max |err| {max_err:.3g} "
        f"> {bound:.3g}"
    )

    timed(runner.run, frames, seconds)
    if benchmark.stats is not None:
        seconds_per_frame = benchmark.stats.stats.median / case.batch
        benchmark.extra_info.update(
            fps=1 / seconds_per_frame, gflops=gflop_per_frame / seconds_per_frame
        )
