"""Frame padding against torch's own F.pad (spandrel's reflect-then-replicate), and
the capture of the crop back that padding comes with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastsr.graph.ir import Graph
from fastsr.padding import FramePadding, frame_padding


def _spandrel_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
    x = F.pad(x, (0, reflect_w, 0, reflect_h), "reflect")
    return F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), "replicate")


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (8, 8), (9, 2), (13, 5)])
@pytest.mark.parametrize(
    "padding",
    [FramePadding(2, 4), FramePadding(0, 3, square=True), FramePadding(inner_multiple=2),
     FramePadding(4, 1, inner_multiple=3, inner_mode="replicate")],
)
def test_frame_pad_matches_torch_pad(size, padding):
    h, w = size
    pixels = np.random.default_rng(h * w).random((2, h, w, 3), dtype=np.float32)
    nchw = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    target_h = max(-(-max(padding.minimum, h) // padding.multiple_of) * padding.multiple_of, 1)
    target_w = max(-(-max(padding.minimum, w) // padding.multiple_of) * padding.multiple_of, 1)
    if padding.square:
        target_h = target_w = max(target_h, target_w)
    expected = _spandrel_pad(nchw, target_h - h, target_w - w)
    inner_h = -target_h % padding.inner_multiple
    inner_w = -target_w % padding.inner_multiple
    if padding.inner_mode == "reflect" and (inner_h >= target_h or inner_w >= target_w):
        with pytest.raises(ValueError, match="too small for the model's own reflect"):
            padding.pad(pixels)  # where F.pad refuses too
        return
    expected = F.pad(expected, (0, inner_w, 0, inner_h), padding.inner_mode)
    got = padding.pad(pixels)
    assert got.shape[1:3] == padding.padded_size(h, w) == tuple(expected.shape[2:])
    np.testing.assert_array_equal(got, expected.permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(padding.pad(torch.from_numpy(pixels)).numpy(), got)


def test_models_without_requirements_are_not_padded():
    graph = Graph("x", 3, "x", [], {}, {"size_requirements": {"minimum": 0, "multiple_of": 1,
                                                               "square": False}})
    assert frame_padding(graph) is None


def test_a_pad_mode_fastsr_cannot_mirror_is_refused():
    graph = Graph("x", 3, "x", [], {}, {"padding": {"multiple_of": 2, "mode": "circular"}})
    with pytest.raises(ValueError, match="circular"):
        frame_padding(graph)


class _CropsToFour(torch.nn.Module):
    def forward(self, x):
        return x[:, :, :4]


class _CropsBack(torch.nn.Module):
    def forward(self, x):
        _, _, h, w = x.size()
        y = F.pixel_unshuffle(x, 2)
        return F.pixel_shuffle(y, 2)[:, :, : h * 1, : w]


def test_capture_takes_a_crop_back_to_the_input_size_as_the_identity():
    from fastsr.graph.from_torch import capture

    graph = capture(_CropsBack(), 3)
    assert [node.op for node in graph.nodes] == ["pixel_unshuffle", "pixel_shuffle"]


def test_capture_refuses_any_other_crop_by_name():
    from fastsr.graph.from_torch import capture
    from fastsr.graph.ir import GraphError

    with pytest.raises(GraphError, match="crop to slice"):
        capture(_CropsToFour(), 3)
