"""The fallback path's memory model and reach: a module fastsr runs whole in PyTorch
(SwinIR here) is sized and tiled like a kernel plan."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel_cases import build

import fastsr
from fastsr.graph import load
from fastsr.tiling import alignment, receptive_radius
from fastsr.torch_memory import measure_peak

TESTS = Path(__file__).resolve().parent


def test_peak_counts_what_is_alive_at_once():
    x = torch.zeros(1000)  # 4000 bytes, made before the measurement
    # x * 2 (4000) and its + 1 (4000) are alive together; then the first is freed and
    # the * 3 result (4000) joins the second: 8000 at most.
    assert measure_peak(lambda t: (t * 2 + 1) * 3, x) == 8000
    # a view keeps its whole storage alive: t + 1 (4000) while its first ten are doubled (40)
    assert measure_peak(lambda t: (t + 1)[:10] * 2, x) == 4040



_RSS_PROBE = """
import sys
sys.path.insert(0, {tests!r})
import torch
from spandrel_cases import build
from fastsr.graph.from_spandrel import import_spandrel
descriptor = import_spandrel().ModelLoader().load_from_state_dict(build("swinir_x2").state_dict())
descriptor.model.eval()
x = torch.rand(1, 3, {side}, {side})
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
with torch.no_grad():
    descriptor(x[..., :32, :32])  # torch's one-time allocations, before the baseline
    open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM to the current RSS
    before = status("VmRSS:")
    descriptor(x)
    print(status("VmHWM:") - before)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_estimate_is_within_a_factor_of_the_peak_resident_memory(tmp_path):
    side = 256
    path = tmp_path / "swinir.pth"
    torch.save(build("swinir_x2").state_dict(), str(path))
    module = load(path).nodes[0].attrs["module"]
    estimate = module.peak_bytes(1, side, side)
    script = textwrap.dedent(_RSS_PROBE.format(tests=str(TESTS), side=side))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    measured = int(run.stdout.split()[-1])
    assert measured / 2 < estimate < measured * 2, (estimate, measured)


def _swinir(tmp_path) -> Path:
    path = tmp_path / "swinir.pth"
    torch.save(build("swinir_x2").state_dict(), str(path))
    return path


def test_reach_is_measured_and_tiles_align_to_the_attention_window(tmp_path):
    graph = load(_swinir(tmp_path))
    # 2 Swin layers of window 8 (7 pixels each way at most) and a few 3x3 convs
    assert 8 < receptive_radius(graph) <= 32
    assert alignment(graph) == 8


def test_fallback_tiled_output_matches_untiled_within_max_memory(tmp_path):
    path = _swinir(tmp_path)
    image = np.random.default_rng(3).random((70, 61, 3), dtype=np.float32)  # not multiples of 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = fastsr.upscale(image, model=str(path))
        up = fastsr.Upscaler(model=str(path), max_memory=8 << 20)
        engine = up._engine("reference")
        plan = up._tile_plan(engine, 1, 70, 61)
        tiled = up(image)
    assert plan is not None and len(plan.windows(70, 61)) > 1
    assert engine.plan_bytes(1, plan.window_h, plan.window_w) <= 8 << 20
    assert engine.plan_bytes(1, 70, 61) > 8 << 20
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


