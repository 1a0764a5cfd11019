"""Hypothesis fuzz over the image readers: random bytes, truncations and header
mutations of valid files in every format fastsr reads. A reader either returns an
image or raises `ImageReadError`: never another exception, a crash or a hang."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_api import random_image
from test_imagefile import camera_exif

from fastsr import exif
from fastsr.imagefile import FORMATS, ImageReadError, read_image_with_metadata, write_image

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=5),  # a hang shows as a missed deadline
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_PIXELS = 1 << 16  # mutated sizes are refused before decoding, as a user's would be


def _pillow(shape, dtype, image_format, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(random_image(shape, dtype)).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _fastsr(suffix, shape, dtype, tmp: Path) -> bytes:
    path = tmp / f"seed{suffix}"
    write_image(path, random_image(shape, dtype))
    return path.read_bytes()


def _tifffile(shape, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, random_image(shape, np.uint16), **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """A valid small file of every kind the readers take apart differently."""
    tmp = tmp_path_factory.mktemp("seeds")
    return {
        "rgb.png": _pillow((9, 12, 3), np.uint8, "PNG", exif=camera_exif(6, 12, 9)),
        "palette.png": _pillow((9, 12), np.uint8, "PNG", bits=4),
        "deep.png": _fastsr(".png", (9, 12, 3), np.uint16, tmp),
        "deep_alpha.png": _fastsr(".png", (9, 12, 4), np.uint16, tmp),
        "photo.jpg": _pillow((9, 12, 3), np.uint8, "JPEG", exif=camera_exif(8, 12, 9)),
        "rgba.webp": _pillow((9, 12, 4), np.uint8, "WEBP", exif=camera_exif(3, 12, 9)),
        "grey.bmp": _pillow((9, 12), np.uint8, "BMP"),
        "rgb.tif": _pillow((9, 12, 3), np.uint8, "TIFF"),
        "deep.tif": _tifffile((9, 12, 3), photometric="rgb", compression="zlib"),
        "deep_grey_alpha.tif": _tifffile((9, 12, 2), photometric="minisblack",
                                         extrasamples=["unassalpha"]),  # fmt: skip
    }


def check_reader(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        pixels, _ = read_image_with_metadata(path, MAX_PIXELS)
    except ImageReadError:
        return
    assert pixels.dtype in (np.uint8, np.uint16)
    assert pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (2, 3, 4))
    assert pixels.size > 0


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(sorted(FORMATS)))
def test_random_bytes(tmp_path, data, suffix):
    check_reader(tmp_path / f"random{suffix}", data)


@FUZZ
@given(name=st.sampled_from(["rgb.png", "palette.png", "deep.png", "deep_alpha.png",
                             "photo.jpg", "rgba.webp", "grey.bmp", "rgb.tif", "deep.tif",
                             "deep_grey_alpha.tif"]),  # fmt: skip
       cut=st.floats(0, 1, exclude_max=True))
def test_truncations(tmp_path, seeds, name, cut):
    data = seeds[name]
    check_reader(tmp_path / name, data[: int(len(data) * cut)])


@FUZZ
@given(
    name=st.sampled_from(["rgb.png", "palette.png", "deep.png", "deep_alpha.png", "photo.jpg",
                          "rgba.webp", "grey.bmp", "rgb.tif", "deep.tif",
                          "deep_grey_alpha.tif"]),  # fmt: skip
    mutations=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1,
                       max_size=6),  # fmt: skip
    anywhere=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      max_size=3),  # fmt: skip
)
def test_header_mutations(tmp_path, seeds, name, mutations, anywhere):
    data = bytearray(seeds[name])
    for position, value in mutations:  # the header: sizes, depths, colour types, offsets
        data[position % len(data)] = value
    for fraction, value in anywhere:  # and the odd byte in the body (chunks, IFDs, EXIF)
        data[int(len(data) * fraction)] = value
    check_reader(tmp_path / name, bytes(data))


@FUZZ
@given(data=st.binary(max_size=512), tag=st.sampled_from(
    [exif.ORIENTATION, exif.PIXEL_X_DIMENSION, exif.PIXEL_Y_DIMENSION]))
def test_exif_editing_never_raises(data, tag):
    for block in (data, camera_exif(6, 4, 4)[: len(data)], exif.HEADER + data):
        value = exif.read_tag(block, tag)
        assert value is None or value >= 0
        assert len(exif.with_tags(block, {tag: 1})) == len(block)
