"""Peak memory of a tiled upscale of an 8K frame (7680x4320) through the default model.

Measured in a fresh subprocess so nothing else of the test session is counted: its peak RSS
(ru_maxrss) minus its RSS before the call (torch imported, input made) is what the call
added; that, less the output image it returns, must stay within the API's memory budget.
Quick mode upscales a small image with forced tiles instead.
"""

from __future__ import annotations

import inspect
import json
import resource
import subprocess
import sys

import pytest

from benchmarks import config, peers

MEMORY = config()["memory"]

CHILD = """
import json, resource, sys, time
import numpy as np
import fastsr

width, height, scale, tile, model, threads = json.loads(sys.argv[1])
image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    out = fastsr.upscale(image, scale=scale, model=model, tile=tile, threads=threads)
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
    sys.exit(0)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "peak_kib": peak, "seconds": seconds,
                  "output_bytes": out.nbytes, "output_shape": list(out.shape)}))
"""


def memory_budget() -> int:
    """The default `max_memory` of fastsr.upscale, in bytes."""
    import fastsr

    return inspect.signature(fastsr.upscale).parameters["max_memory"].default


def default_model_missing() -> str | None:
    """Why the model of this benchmark cannot be loaded, or None."""
    from fastsr.api import DEFAULT_MODEL
    from fastsr.graph import load

    try:
        load(MEMORY["model"] or DEFAULT_MODEL, scale=MEMORY["scale"])
    except (ValueError, FileNotFoundError) as error:
        return f"model not shipped yet: {error}"
    return None


def run_child(args: list) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=MEMORY["timeout_seconds"],
    )
    if done.returncode != 0:
        raise AssertionError(f"memory subprocess failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_upscale_peak_memory(benchmark, quick, threads):
    try:
        budget = memory_budget()
    except (ImportError, AttributeError, KeyError) as error:
        pytest.skip(f"fastsr.upscale(max_memory=...) is not there yet (issue 7): {error}")
    width, height = MEMORY["size"][mode_key(quick)]
    if not quick and peers.unavailable("fastsr_cpu"):
        pytest.skip("an 8K frame through the reference backend takes too long; needs fastsr cpu")
    missing = default_model_missing()
    if missing:
        pytest.skip(missing)
    tile = MEMORY["tile_quick"] if quick else None
    args = [width, height, MEMORY["scale"], tile, MEMORY["model"], threads]

    result = benchmark.pedantic(run_child, args=(args,), rounds=1, iterations=1)
    if "error" in result:
        raise AssertionError(f"fastsr.upscale failed on {width}x{height}: {result['error']}")
    added = 1024 * (result["peak_kib"] - result["before_kib"])
    working = added - result["output_bytes"]
    benchmark.group = "memory"
    benchmark.extra_info.update(
        kind="memory",
        width=width,
        height=height,
        scale=MEMORY["scale"],
        model=MEMORY["model"] or "default",
        peak_rss_bytes=1024 * result["peak_kib"],
        added_rss_bytes=added,
        working_bytes=working,
        budget_bytes=budget,
        seconds=result["seconds"],
        children_maxrss_bytes=1024 * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    assert working <= budget, (
        f"upscaling {width}x{height} added {added / 2**20:.0f} MiB of RSS beyond its input, "
        f"{working / 2**20:.0f} MiB beyond its output too: over the {budget / 2**20:.0f} MiB budget"
    )


def mode_key(quick: bool) -> str:
    return "quick" if quick else "full"
