"""Fuzz fastsr.upscale: any input gives the right shape and dtype or one of the clear errors."""

from __future__ import annotations

import functools

import numpy as np
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_api import one_torch_thread, tiny_graph  # noqa: F401

import fastsr

CLEAR_ERRORS = (ValueError, TypeError)
SUPPORTED = [np.uint8, np.uint16, np.float16, np.float32, np.float64]
DTYPES = [*SUPPORTED, *SUPPORTED, np.int16, np.int32, np.uint32, bool]


@functools.cache
def upscaler():
    return fastsr.Upscaler(model=tiny_graph(), backend="reference")


@st.composite
def arrays(draw):
    """Arrays of small shapes and many dtypes, often strided views; most of them valid."""
    if draw(st.integers(0, 3)):  # an image layout: H x W, H x W x C or N x H x W x C
        ndim = draw(st.sampled_from([2, 3, 4]))
        spatial = draw(st.lists(st.integers(1, 7), min_size=ndim - 1, max_size=ndim - 1))
        shape = (*spatial, draw(st.integers(1, 4))) if ndim > 2 else tuple(spatial)
    else:  # anything
        ndim = draw(st.integers(0, 5))
        shape = tuple(draw(st.lists(st.integers(0, 7), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind == "f":
        values = rng.random(shape)
        if draw(st.integers(0, 3)) == 0 and values.size:  # sometimes out of range or not finite
            values.flat[0] = draw(st.sampled_from([np.nan, np.inf, -1.0, 2.0, 1.0, 0.0]))
    else:
        high = 1 if dtype.kind == "b" else min(np.iinfo(dtype).max, 65535)
        values = rng.integers(0, high, size=shape, endpoint=True)
    array = values.astype(dtype)
    if array.ndim >= 2 and draw(st.booleans()):
        step = draw(st.sampled_from([-1, 2, -2]))
        axis = draw(st.integers(0, array.ndim - 1))
        index = [slice(None)] * array.ndim
        index[axis] = slice(None, None, step)
        array = array[tuple(index)]
    return array


def expected_shape(array: np.ndarray) -> tuple[int, ...] | None:
    """What upscale must return for a valid array, None when it must refuse it."""
    if array.dtype.kind not in "uf" or array.dtype.itemsize not in (1, 2, 4, 8):
        return None
    if array.dtype.kind == "u" and array.dtype.itemsize > 2:
        return None
    if array.ndim == 2:
        h, w = array.shape
        spatial = (h, w)
    elif array.ndim in (3, 4) and array.shape[-1] in (1, 2, 3, 4):
        spatial = array.shape[-3:-1]
    else:
        return None
    if array.size == 0:
        return None
    if array.dtype.kind == "f":
        values = array.astype(np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            return None
    shape = list(array.shape)
    shape[-2 if array.ndim == 2 else -3] = spatial[0] * 2
    shape[-1 if array.ndim == 2 else -2] = spatial[1] * 2
    return tuple(shape)


@settings(max_examples=50, deadline=None)
@given(arrays())
def test_upscale_returns_the_right_shape_or_a_clear_error(array):
    expected = expected_shape(array)
    event("valid input" if expected is not None else "invalid input")
    try:
        out = upscaler()(array)
    except CLEAR_ERRORS as error:
        assert expected is None, f"refused a valid {array.dtype} {array.shape}: {error}"
        assert str(error)
        return
    assert expected is not None, f"accepted an invalid {array.dtype} {array.shape}"
    assert out.shape == expected and out.dtype == array.dtype.newbyteorder("=")
    if out.dtype.kind == "f":
        assert np.isfinite(out.astype(np.float64)).all()
        assert out.min() >= 0 and out.max() <= 1


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(0, 5),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    batch=st.one_of(st.none(), st.integers(1, 2)),
    dtype=st.sampled_from([torch.uint8, torch.float32, torch.float16, torch.int64]),
    transpose=st.booleans(),
)
def test_torch_tensors_of_any_layout(channels, height, width, batch, dtype, transpose):
    shape = (channels, height, width) if batch is None else (batch, channels, height, width)
    tensor = (torch.rand(shape) * (255 if dtype in (torch.uint8, torch.int64) else 1)).to(dtype)
    if transpose:
        tensor = tensor.transpose(-1, -2)  # a strided view with height and width swapped
    valid = channels in (1, 2, 3, 4) and dtype != torch.int64
    try:
        out = upscaler()(tensor)
    except CLEAR_ERRORS:
        assert not valid
        return
    assert valid
    assert out.dtype == dtype and out.shape[-2:] == (tensor.shape[-2] * 2, tensor.shape[-1] * 2)
    assert out.shape[:-2] == tensor.shape[:-2]
