"""Image files with their metadata: orientation, EXIF, ICC, DPI, PNG text, quality,
16-bit TIFF, palettes, size limits. Files are made here with Pillow and tifffile, and
checked with them, never with fastsr's own reader alone."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin
from test_api import random_image

from fastsr import exif
from fastsr.imagefile import (
    DEFAULT_QUALITY,
    ImageReadError,
    Metadata,
    _png_chunk,
    read_image,
    read_image_with_metadata,
    write_image,
)

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MAKE, DATE_TAKEN = 0x010F, 0x9003


def camera_exif(orientation: int, width: int, height: int) -> bytes:
    """EXIF as a camera writes it: orientation, make, date taken and pixel size."""
    block = Image.Exif()
    block[exif.ORIENTATION] = orientation
    block[MAKE] = "fastsr test camera"
    sub = block.get_ifd(0x8769)
    sub[DATE_TAKEN] = "2024:05:06 07:08:09"
    sub[exif.PIXEL_X_DIMENSION], sub[exif.PIXEL_Y_DIMENSION] = width, height
    return block.tobytes()


def pillow_exif(path) -> Image.Exif:
    with Image.open(path) as image:
        return image.getexif()


# -- orientation --------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_exif_orientation_is_applied_like_pillow_does(tmp_path, orientation, suffix):
    path = tmp_path / f"photo{suffix}"
    options = {".jpg": {"quality": 100}, ".png": {}, ".webp": {"lossless": True}}[suffix]
    Image.fromarray(random_image((5, 8, 3), np.uint8)).save(
        path, exif=camera_exif(orientation, 8, 5), **options
    )
    pixels, metadata = read_image_with_metadata(path)
    with Image.open(path) as image:
        upright = np.asarray(ImageOps.exif_transpose(image))  # the independent reference
    np.testing.assert_array_equal(pixels, upright)
    block = Image.Exif()
    block.load(metadata.exif)
    assert block[exif.ORIENTATION] == 1 and block[MAKE] == "fastsr test camera"
    assert block.get_ifd(0x8769)[DATE_TAKEN] == "2024:05:06 07:08:09"


def test_a_quarter_turn_swaps_the_dpi_axes(tmp_path):
    Image.fromarray(random_image((4, 6, 3), np.uint8)).save(
        tmp_path / "a.jpg", exif=camera_exif(6, 6, 4), dpi=(300, 200)
    )
    pixels, metadata = read_image_with_metadata(tmp_path / "a.jpg")
    assert pixels.shape == (6, 4, 3) and metadata.dpi == (200, 300)


def test_tiff_orientation_tag_is_applied(tmp_path):
    pixels = random_image((3, 5, 3), np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", pixels, photometric="rgb", extratags=[(274, 3, 1, 8)])
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), np.rot90(pixels, 1))


# -- metadata written back ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_icc_dpi_and_exif_round_trip(tmp_path, suffix, dtype):
    source = tmp_path / "in.png"
    Image.fromarray(random_image((4, 6, 3), np.uint8)).save(
        source, icc_profile=SRGB, dpi=(300, 150), exif=camera_exif(6, 6, 4)
    )
    pixels, metadata = read_image_with_metadata(source)
    out = np.repeat(np.repeat(pixels, 2, 0), 2, 1).astype(dtype)
    out *= 257 if dtype == np.uint16 else 1
    write_image(tmp_path / f"out{suffix}", out, metadata.for_output(2, 8, 12))
    with Image.open(tmp_path / f"out{suffix}") as image:
        assert image.info["icc_profile"] == SRGB
        if suffix != ".webp":  # WebP holds no DPI
            # physical size kept: DPI doubled, axes swapped by the quarter turn
            assert image.info["dpi"] == pytest.approx((300, 600), rel=1e-3)  # PNG: dots/metre
        if not (suffix == ".tif" and dtype == np.uint16):  # tifffile writes no EXIF
            block = image.getexif()
            assert block[exif.ORIENTATION] == 1 and block[MAKE] == "fastsr test camera"
            sub = block.get_ifd(0x8769)
            assert (sub[exif.PIXEL_X_DIMENSION], sub[exif.PIXEL_Y_DIMENSION]) == (8, 12)
    if dtype == np.uint16 and suffix in (".png", ".tif"):
        np.testing.assert_array_equal(read_image(tmp_path / f"out{suffix}"), out)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_text_chunks_round_trip(tmp_path, dtype):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "harbour at dawn")
    info.add_itxt("Description", "Ünïcødé ✓", lang="en")
    info.add_text("Author", "z", zip=True)
    Image.fromarray(random_image((4, 4, 3), np.uint8)).save(tmp_path / "in.png", pnginfo=info)
    _, metadata = read_image_with_metadata(tmp_path / "in.png")
    expected = {"Title": "harbour at dawn", "Description": "Ünïcødé ✓", "Author": "z"}
    assert metadata.text == expected
    write_image(tmp_path / "out.png", random_image((8, 8, 3), dtype), metadata)
    with Image.open(tmp_path / "out.png") as image:
        image.load()  # checks every chunk's CRC
        assert image.text == expected


def test_no_metadata_writes_none(tmp_path):
    write_image(tmp_path / "a.jpg", random_image((4, 4, 3), np.uint8), None)
    with Image.open(tmp_path / "a.jpg") as image:
        assert "icc_profile" not in image.info and "exif" not in image.info


def test_cmyk_is_read_as_rgb_without_its_cmyk_profile(tmp_path):
    cmyk = Image.fromarray(random_image((4, 4, 4), np.uint8), mode="CMYK")
    cmyk.save(tmp_path / "a.jpg", icc_profile=b"a CMYK profile", quality=100)
    pixels, metadata = read_image_with_metadata(tmp_path / "a.jpg")
    with Image.open(tmp_path / "a.jpg") as image:
        np.testing.assert_array_equal(pixels, np.asarray(image.convert("RGB")))
    assert metadata.icc_profile is None


# -- quality ------------------------------------------------------------------------------


@pytest.mark.parametrize("quality", [None, 40, 80, 100])
def test_jpeg_quality_tables_and_full_chroma(tmp_path, quality):
    pixels = random_image((16, 16, 3), np.uint8)
    options = {} if quality is None else {"quality": quality}
    write_image(tmp_path / "ours.jpg", pixels, **options)
    Image.fromarray(pixels).save(tmp_path / "pillow.jpg", quality=quality or DEFAULT_QUALITY)
    with Image.open(tmp_path / "ours.jpg") as ours, Image.open(tmp_path / "pillow.jpg") as ref:
        assert ours.quantization == ref.quantization
        assert JpegImagePlugin.get_sampling(ours) == 0  # 4:4:4
    assert DEFAULT_QUALITY == 95


def test_webp_quality_and_lossless(tmp_path):
    pixels = random_image((32, 32, 4), np.uint8)
    write_image(tmp_path / "lossless.webp", pixels, lossless=True)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "lossless.webp")), pixels)
    write_image(tmp_path / "q95.webp", pixels)
    write_image(tmp_path / "q30.webp", pixels, quality=30)
    assert (tmp_path / "q30.webp").stat().st_size < (tmp_path / "q95.webp").stat().st_size
    lossy = np.asarray(Image.open(tmp_path / "q95.webp"))
    assert not np.array_equal(lossy, pixels)


def test_bad_quality_and_lossless_jpeg_are_refused(tmp_path):
    for quality in (0, 101, 9.5, True):
        with pytest.raises(ValueError, match="quality must be a whole number from 1 to 100"):
            write_image(tmp_path / "a.jpg", random_image((4, 4, 3), np.uint8), quality=quality)
    with pytest.raises(ValueError, match="JPEG cannot be lossless"):
        write_image(tmp_path / "a.jpg", random_image((4, 4, 3), np.uint8), lossless=True)
    assert list(tmp_path.iterdir()) == []


# -- 16-bit TIFF, palettes ------------------------------------------------------------------


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_tiff_keeps_sixteen_bits(tmp_path, channels):
    pixels = random_image((5, 6, channels), np.uint16)
    tifffile.imwrite(
        tmp_path / "in.tif", pixels,
        photometric="minisblack" if channels == 2 else "rgb",
        extrasamples=["unassalpha"] if channels in (2, 4) else None,
    )  # fmt: skip
    back = read_image(tmp_path / "in.tif")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, pixels)
    write_image(tmp_path / "out.tif", pixels, Metadata(icc_profile=SRGB, dpi=(300.0, 300.0)))
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        page = tiff.pages[0]
        np.testing.assert_array_equal(page.asarray(), pixels)
        assert page.tags[34675].value == SRGB
        assert page.tags[282].value == (300, 1)


def test_sixteen_bit_grey_tiff(tmp_path):
    pixels = random_image((5, 6), np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "in.tif"), pixels)


@pytest.mark.parametrize(
    ("grey", "transparent", "mode"),
    [(True, False, "L"), (True, True, "LA"), (False, False, "RGB"), (False, True, "RGBA")],
)
def test_palette_images_keep_a_sensible_mode(tmp_path, grey, transparent, mode):
    image = Image.fromarray(random_image((4, 5), np.uint8) % 8, mode="L").convert("P")
    levels = np.arange(8) * 30
    palette = np.stack([levels] * 3 if grey else [levels, 255 - levels, levels // 2], 1)
    image.putpalette(palette.astype(np.uint8).ravel().tolist())
    options = {"transparency": 3} if transparent else {}
    image.save(tmp_path / "p.png", **options)
    with Image.open(tmp_path / "p.png") as reference:
        expected = np.asarray(reference.convert(mode))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)


# -- limits and errors --------------------------------------------------------------------


def png_with_size(width: int, height: int) -> bytes:
    """A PNG header claiming width x height over a tiny (invalid) image stream."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", zlib.compress(b"\0")), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(_png_chunk(kind, data) for kind, data in chunks)


def test_a_decompression_bomb_is_refused_with_the_way_to_allow_it(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_with_size(100_000, 100_000))
    with pytest.raises(ImageReadError, match=r"--max-pixels 10000000000"):
        read_image(tmp_path / "bomb.png")


def test_max_pixels_allows_beyond_pillows_own_limit(tmp_path, monkeypatch):
    pixels = random_image((6, 7, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    with pytest.raises(ImageReadError, match="--max-pixels 42"):
        read_image(tmp_path / "a.png", max_pixels=41)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow alone refuses beyond 20
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", max_pixels=42), pixels)


def test_damaged_and_foreign_files_raise_image_read_error(tmp_path):
    Image.fromarray(random_image((16, 16, 3), np.uint8)).save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    cases = {
        "truncated.png": data[: len(data) // 2],
        "empty.png": b"",
        "text.jpg": b"just some notes, not a photo",
        "gif.png": b"GIF89a" + bytes(40),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageReadError, match="is not a readable image"):
            read_image(tmp_path / name)
    assert issubclass(ImageReadError, ValueError)


def test_exif_edits_leave_other_bytes_alone():
    block = camera_exif(8, 6, 4)
    edited = exif.with_tags(block, {exif.ORIENTATION: 1, exif.PIXEL_X_DIMENSION: 12})
    changed = [i for i, (a, b) in enumerate(zip(block, edited, strict=True)) if a != b]
    assert len(changed) <= 3  # the two values' low bytes (and a high byte of one)
    loaded = Image.Exif()
    loaded.load(edited)
    assert loaded[exif.ORIENTATION] == 1 and loaded.get_ifd(0x8769)[exif.PIXEL_X_DIMENSION] == 12
    assert exif.read_tag(edited, exif.PIXEL_Y_DIMENSION) == 4
    assert exif.read_tag(block[:20], exif.ORIENTATION) is None  # cut short: absent, no error
