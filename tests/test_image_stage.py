"""The cpu backend's C++ image stage (Program.run_image) against the torch image stage of
the reference backend: dtypes, channel layouts, strides, Y and RGB models, tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from op_cases import OP_CASES, build_case, case_size
from test_api import TinySR, random_image, tiny_graph

import fastsr
from fastsr.backends import backend_status, get_backend
from fastsr.engine import Engine, make_plan
from fastsr.graph.from_torch import capture
from fastsr.graph.passes import optimize

pytestmark = pytest.mark.skipif(backend_status()["cpu"] is not None, reason="no C++ backend")
# Share of pixels allowed one level off: 0.1 % at 8 bits (the project's parity bar); at 16
# bits a level is 1.5e-5, within a few float32 rounding steps of the two pipelines.
OFF_BY_ONE = {np.uint8: 1e-3, np.uint16: 1e-2}


def _compare(graph, image, **options):
    fast = fastsr.Upscaler(model=graph, backend="cpu", threads=2, **options)(image)
    reference = fastsr.Upscaler(model=graph, backend="reference", **options)(image)
    _assert_close(fast, reference, image)


def _assert_close(fast, reference, image):
    assert fast.dtype == reference.dtype and fast.shape == reference.shape
    if image.dtype.type in OFF_BY_ONE:
        diff = np.abs(fast.astype(np.int64) - reference.astype(np.int64))
        assert diff.max() <= 1 and (diff > 0).mean() <= OFF_BY_ONE[image.dtype.type]
    else:
        tolerance = 2e-3 if image.dtype == np.float16 else 1e-5
        np.testing.assert_allclose(fast.astype(np.float64), reference, atol=tolerance, rtol=0)


@pytest.mark.parametrize("color", ["rgb", "y"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_cpu_image_stage_matches_the_torch_stage(color, dtype, channels):
    graph = tiny_graph(3 if color == "rgb" else 1, 2)
    _compare(graph, random_image((2, 11, 14, channels), dtype, seed=channels))


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[:, ::-1],
        lambda a: a[..., ::-1],
        lambda a: a[1::2, 3:],
        lambda a: a.transpose(1, 0, 2),
    ],
    ids=["flipped", "bgr", "sliced", "transposed"],
)
@pytest.mark.parametrize("color", ["rgb", "y"])
def test_cpu_image_stage_reads_any_strides(view, color):
    graph = tiny_graph(3 if color == "rgb" else 1, 2)
    _compare(graph, view(random_image((20, 17, 3), np.uint8)))


@pytest.mark.parametrize("color", ["rgb", "y"])
def test_cpu_image_stage_writes_tiles_into_place(color):
    graph = tiny_graph(3 if color == "rgb" else 1, 3)
    _compare(graph, random_image((29, 23, 4), np.uint8, seed=3), tile=5)


@pytest.mark.parametrize("tile", [None, 40])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_cpu_image_stage_merges_chroma_of_rows_wider_than_a_chunk(dtype, tile):
    """Output rows of a Y model longer than the 128 pixels the C++ merge takes at a time
    (kMergeChunk in csrc/image_io.cpp), whole and in tiles that start mid-row."""
    _compare(tiny_graph(1, 4), random_image((9, 83, 3), dtype, seed=7), tile=tile)


class TailSR(TinySR):
    """TinySR ending in its last conv, as the shipped models do: shuffle and skip fused."""

    def forward(self, x):
        skip = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.shuffle(self.tail(torch.relu(self.head(x)))) + skip


@pytest.mark.parametrize("window", [None, (5, 37)])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("color", ["rgb", "y"])
def test_cpu_image_stage_writes_behind_the_last_conv_band_by_band(color, threads, window):
    """Output rows so wide that each thread's share of the last conv runs in several bands,
    each written to the frame before the next (Program::write_behind_conv): a batch of two,
    uneven shares over three threads, the whole output and a window of it from (top, left)
    on. The output starts as a sentinel, so a row never written shows."""
    channels = 3 if color == "rgb" else 1
    graph = tiny_graph(channels, 4, module=TailSR(channels, 4))
    assert optimize(graph).nodes[-1].op == "conv2d"  # the skip and the shuffle in its epilogue
    image = random_image((2, 7, 1100, 3), np.uint8, seed=5)
    reference = fastsr.Upscaler(model=graph, backend="reference")(image)
    top, left = window or (0, 0)
    reference = reference[:, top : top + 20, left : left + 3000] if window else reference
    fast = np.full_like(reference, 77)
    Engine(graph, "cpu", threads=threads).compiled(2, 7, 1100).run_image(image, fast, top, left)
    _assert_close(fast, reference, image)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_cpu_plan_bytes_are_what_the_program_allocates(case):
    module, channels = build_case(case)
    graph = optimize(capture(module, channels))
    backend = get_backend("cpu")
    for h, w in [case_size(case, 9, 12), (32, 20)]:
        plan = make_plan(graph, 2, h, w)
        assert backend.plan_bytes(graph, plan) == backend.compile(graph, plan).nbytes


@pytest.mark.parametrize("tile", [None, 6])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_cpu_image_stage_takes_a_padded_frames_chroma_from_the_frame(dtype, tile):
    """Frames padded to a multiple (fastsr.padding): the torch stage's chroma, from the
    frame alone, is tested against torch's bicubic in test_spandrel."""
    graph = tiny_graph(1, 2)
    graph.meta["size_requirements"] = {"multiple_of": 8}
    _compare(graph, random_image((2, 13, 19, 3), dtype, seed=5), tile=tile)
