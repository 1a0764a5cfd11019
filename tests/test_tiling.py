"""Tiling: the tiled result equals the untiled one, by construction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_api import (  # noqa: F401
    CountingCompiles,
    TinySR,
    one_torch_thread,
    random_image,
    tiny_graph,
)

import fastsr
from fastsr import tiling
from fastsr.engine import Engine
from fastsr.graph.from_torch import capture


class Dilated(nn.Module):
    """Dilated convs, a conv after the upscale (reach measured at 2x) and a bilinear skip."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.b = nn.Conv2d(8, 12, 5, padding=2)
        self.shuffle = nn.PixelShuffle(2)
        self.c = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        skip = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.c(self.shuffle(self.b(torch.relu(self.a(x))))) + skip


class DownUp(nn.Module):
    """A strided conv down, a transposed conv back up, a nearest upscale at the end."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.down = nn.Conv2d(3, 8, 4, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = self.out(torch.relu(self.up(torch.relu(self.down(x)))))
        return F.interpolate(y, scale_factor=3, mode="nearest")


class Pooled(nn.Module):
    """Channel attention: a global average pool makes the receptive field global."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        y = self.conv(x)
        return self.shuffle(y * torch.sigmoid(self.pool(y)))


def conv_stack(layers: int) -> nn.Module:
    torch.manual_seed(3)
    convs = [nn.Conv2d(3, 3, 3, padding=1) for _ in range(layers)]
    return nn.Sequential(*convs, nn.Upsample(scale_factor=2, mode="nearest"))


MODELS = {
    "tiny_sr": (lambda: TinySR(3, 2), 3, 2),  # bicubic skip: reach 3 at 1x
    "dilated": (Dilated, 5, 2),  # 2 + 2 + 0.5, rounded up
    "down_up": (DownUp, 8, 3),  # 1.5 + (2 at 1/2 scale) 4 + 1 + 1, rounded up
    "conv_stack": (lambda: conv_stack(4), 5, 2),  # 4 convs + nearest rounding
}


def graph_of(name: str):
    factory, _, scale = MODELS[name]
    return capture(factory().eval(), 3, {"scale": scale, "color": "rgb"})


@pytest.mark.parametrize("name", MODELS)
def test_receptive_radius_of_known_networks(name):
    assert tiling.receptive_radius(graph_of(name)) == MODELS[name][1]


def test_global_pooling_means_no_finite_radius():
    graph = capture(Pooled().eval(), 3, {"scale": 2})
    assert tiling.receptive_radius(graph) is None
    with pytest.raises(ValueError, match="global average pooling"):
        fastsr.Upscaler(model=graph, backend="reference", tile=8)


def test_alignment_follows_strided_convs():
    assert tiling.alignment(graph_of("down_up")) == 2
    assert tiling.alignment(graph_of("tiny_sr")) == 1


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("tile", [3, 12])
def test_tiled_output_matches_untiled(name, tile):
    graph = graph_of(name)
    image = random_image((2, 44, 30, 3), np.float32)
    whole = fastsr.Upscaler(model=graph, backend="reference")(image)
    tiled_up = fastsr.Upscaler(model=graph, backend="reference", tile=tile)
    tiled = tiled_up(image)
    assert tiled_up._tile_plans  # really tiled, not silently whole
    assert next(iter(tiled_up._tile_plans.values())) is not None
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)


def test_a_halo_one_pixel_short_of_the_receptive_field_shows_seams():
    """The exactness comes from the halo: four stacked 3x3 convs see 4 pixels around."""
    graph = graph_of("conv_stack")
    engine = Engine(graph, "reference")
    x = torch.rand(1, 20, 20, 3)
    whole = engine.run(x)

    def tiled(halo: int) -> torch.Tensor:
        out = torch.zeros_like(whole)
        for win in tiling.TilePlan(4 + 2 * halo, 4 + 2 * halo, halo, 2).windows(20, 20):
            y = engine.run(x[:, win.y0 : win.y0 + win.h, win.x0 : win.x0 + win.w])
            rows, cols = win.out_y1 - win.out_y0, win.out_x1 - win.out_x0
            out[:, win.out_y0 : win.out_y1, win.out_x0 : win.out_x1] = y[
                :, win.top : win.top + rows, win.left : win.left + cols
            ]
        return out

    assert (tiled(4) - whole).abs().max() <= 1e-5
    assert (tiled(3) - whole).abs().max() > 1e-3


def test_memory_budget_turns_tiling_on_and_each_run_fits_it(monkeypatch):
    graph = graph_of("tiny_sr")
    budget = 200_000
    up = fastsr.Upscaler(model=graph, backend="reference", max_memory=budget)
    counter = CountingCompiles(monkeypatch, up._engine("reference").backend)
    image = random_image((64, 80, 3), np.float32)
    tiled = up(image)
    plan = up._tile_plans[("reference", 1, 64, 80)]
    assert plan is not None
    engine = up._engine("reference")
    assert engine.plan_bytes(1, plan.window_h, plan.window_w) <= budget
    assert counter.sizes == [(1, plan.window_h, plan.window_w)]  # every tile: one plan
    whole = fastsr.Upscaler(model=graph, backend="reference")(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)


def test_whole_frame_runs_untiled_when_it_fits():
    up = fastsr.Upscaler(model=graph_of("tiny_sr"), backend="reference")
    up(random_image((16, 16, 3), np.uint8))
    assert up._tile_plans == {("reference", 1, 16, 16): None}


def test_eight_k_frame_gets_tiles_that_fit_the_default_budget():
    graph = graph_of("dilated")
    engine = Engine(graph, "reference")
    halo, align = tiling.receptive_radius(graph), tiling.alignment(graph)

    def run_bytes(h, w):
        return engine.plan(1, h, w).peak_bytes

    assert run_bytes(4320, 7680) > fastsr.api.DEFAULT_MAX_MEMORY
    plan = tiling.plan_tiles(
        run_bytes, 4320, 7680, halo, align, 2, None, fastsr.api.DEFAULT_MAX_MEMORY
    )
    assert plan is not None
    assert run_bytes(plan.window_h, plan.window_w) <= fastsr.api.DEFAULT_MAX_MEMORY
    assert plan.window_h > 256  # not needlessly small either


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 200),
    core=st.integers(1, 40),
    halo=st.integers(0, 10),
)
def test_axis_windows_cover_the_axis_with_equal_windows(length, core, halo):
    window = core + 2 * halo
    windows = tiling.axis_windows(length, window, halo)
    covered = np.zeros(length, bool)
    for start, keep_from, keep_to in windows:
        assert start >= 0 and start + min(window, length) <= length
        # a kept pixel is an image edge or at least `halo` inside its window
        assert keep_from == 0 or keep_from - start >= halo
        assert keep_to == length or start + window - keep_to >= halo
        covered[keep_from:keep_to] = True
    assert covered.all()


@pytest.mark.parametrize(
    ("color", "channels"), [("y", 3), ("rgb", 4), ("rgb", 1)], ids=["y_model", "rgba", "grey"]
)
def test_tiling_covers_the_whole_colour_pipeline(color, channels):
    """Chroma bicubic (Y models), alpha through the model and grey all tile exactly."""
    graph = tiny_graph(1 if color == "y" else 3, 2)
    image = random_image((1, 26, 31, channels), np.float32, seed=5)
    whole = fastsr.Upscaler(model=graph, backend="reference")(image)
    tiled = fastsr.Upscaler(model=graph, backend="reference", tile=4)(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)


def test_big_frame_memory_stays_near_the_budget():
    """Peak memory grows by about the output plus the budget, not by float copies of the
    frame (a 384 x 384 RGB frame untiled would take ~30 MiB of float32 buffers)."""
    script = """
import resource, numpy as np, torch, fastsr
from test_api import tiny_graph
torch.set_num_threads(1)
up = fastsr.Upscaler(model=tiny_graph(), backend="reference", max_memory=4 << 20)
up(np.zeros((64, 64, 3), np.uint8))
image = np.random.default_rng(0).integers(0, 255, (384, 384, 3), dtype=np.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = up(image)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown * 1024, out.nbytes)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
    )  # fmt: skip
    grown, output_bytes = map(int, result.stdout.split())
    assert grown < output_bytes + 3 * (4 << 20), f"peak grew by {grown >> 20} MiB"


def test_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    graph = graph_of("tiny_sr")
    image = random_image((40, 36, 3), np.float32)
    whole = fastsr.Upscaler(model=graph, backend="reference")(image)
    up = fastsr.Upscaler(model=graph, backend="reference")
    engine = up._engine("reference")
    real_compiled = engine.compiled

    def compiled_small_only(n, h, w):  # a device that can only hold 16 x 16 windows
        if h * w > 16 * 16:
            raise MemoryError("out of memory")
        return real_compiled(n, h, w)

    monkeypatch.setattr(engine, "compiled", compiled_small_only)
    with pytest.warns(RuntimeWarning, match="out of memory; retrying"):
        tiled = up(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)
    plan = next(iter(up._tile_plans.values()))
    assert plan.window_h * plan.window_w <= 16 * 16


def test_out_of_memory_with_forced_tiles_is_raised(monkeypatch):
    up = fastsr.Upscaler(model=graph_of("tiny_sr"), backend="reference", tile=8)
    engine = up._engine("reference")

    def no_memory(n, h, w):
        raise MemoryError("out of memory")

    monkeypatch.setattr(engine, "compiled", no_memory)
    with pytest.raises(MemoryError):
        up(random_image((20, 20, 3), np.float32))


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 200),
    core=st.integers(1, 5),
    halo=st.integers(0, 3),
    align=st.sampled_from([2, 4, 8]),
)
def test_aligned_windows_start_on_the_grid_and_reach_the_edge(length, core, halo, align):
    halo, window = halo * align, core * align + 2 * halo * align
    windows = tiling.axis_windows(length, window, halo, align)
    covered = np.zeros(length, bool)
    for i, (start, keep_from, keep_to) in enumerate(windows):
        assert start % align == 0
        end = length if i == len(windows) - 1 else start + window
        assert end <= length and end - start < window + align
        assert keep_from == 0 or keep_from - start >= halo
        assert keep_to == length or end - keep_to >= halo
        covered[keep_from:keep_to] = True
    assert covered.all()
