"""Image files in and out, with what a photographer expects to survive.

Reading applies the EXIF orientation (the pixels come back upright) and returns the
metadata beside them: EXIF (orientation reset to 1), ICC profile, DPI and PNG text.
Writing puts back what the format holds: EXIF and ICC in PNG, JPEG, WebP and TIFF,
DPI in PNG, JPEG, TIFF and BMP, text in PNG. `Metadata.for_output` multiplies the DPI
by the scale, so a print keeps its physical size (300 dpi at 4x6 inches upscaled x2
is 600 dpi at 4x6 inches), and updates the EXIF pixel dimensions.

Pillow decodes most files but holds 16-bit colour only as 8 bits: 16-bit colour PNGs
go through PyAV's PNG codec (FFmpeg), 16-bit colour TIFFs through tifffile. Whatever a
decoder raises for a damaged or foreign file becomes `ImageReadError`. Writes go to a
temporary sibling file renamed over the target at the end, so an error never leaves a
half-written image behind.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from fastsr import exif

# suffix -> Pillow format name
FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF",
}  # fmt: skip
_READ_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")  # JPEG opens MPO (phone) files too
# Pillow's own default warning threshold: ~89.5 megapixels (a 12k x 7.5k image).
DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_QUALITY = 95
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_PNG_DEEP_COLOUR = (2, 4, 6)  # 16-bit PNG colour types Pillow would cut to 8 bits
_NO_ALPHA = ("JPEG", "BMP")
_ORIENTATIONS = {  # EXIF orientation -> what makes the stored pixels upright
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
# Pillow modes -> the mode read as; None: decided by the palette. Colour spaces other than
# RGB are converted, and their ICC profile (which describes them, not RGB) is dropped.
_CONVERT = {"1": "L", "P": None, "PA": "RGBA", "La": "LA", "RGBa": "RGBA",
            "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}  # fmt: skip
_OTHER_COLOUR_SPACES = ("CMYK", "LAB", "HSV")
_pillow_limit_lock = threading.Lock()


class ImageReadError(ValueError):
    """A file that is not a readable image (damaged, foreign, unsupported or too large)."""


@dataclass(frozen=True)
class Metadata:
    """What travels with the pixels. Empty fields are simply not written."""

    exif: bytes | None = None  # the raw EXIF block, "Exif\0\0" header first, orientation 1
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    text: dict[str, str] = field(default_factory=dict)  # PNG tEXt / zTXt / iTXt

    def for_output(self, scale: int, width: int, height: int) -> Metadata:
        """The metadata of this image upscaled `scale` times to `width` x `height`."""
        dpi = None if self.dpi is None else (self.dpi[0] * scale, self.dpi[1] * scale)
        block = self.exif and exif.with_tags(
            self.exif, {exif.PIXEL_X_DIMENSION: width, exif.PIXEL_Y_DIMENSION: height}
        )
        return replace(self, exif=block, dpi=dpi)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in FORMATS


# -- reading ------------------------------------------------------------------------------


def read_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """H x W (grey), H x W x 2 (grey + alpha), x 3 (RGB) or x 4 (RGBA); uint8 or uint16.

    Upright (EXIF orientation applied). Images of more than `max_pixels` pixels raise
    `ImageReadError` before they are decoded; so does any file that cannot be decoded.
    """
    return read_image_with_metadata(path, max_pixels)[0]


def read_image_with_metadata(path, max_pixels: int = DEFAULT_MAX_PIXELS):
    """(pixels as `read_image` returns them, `Metadata`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    _allow_in_pillow(max_pixels)
    try:
        with open(path, "rb") as file:
            head = file.read(32)
        try:
            image = Image.open(path, formats=_READ_FORMATS)
        except Image.UnidentifiedImageError:
            if not head.startswith(_TIFF_SIGNATURES):
                raise
            return _read_tiff_only(path, max_pixels)  # e.g. 16-bit grey + alpha
        with image:
            _check_size(path, image.size, max_pixels)
            pixels, metadata = _decode(path, image, head)
    except (ImageReadError, PermissionError):
        raise
    except Image.DecompressionBombError as error:  # beyond twice max_pixels: see _allow_in_pillow
        count = re.search(r"\((\d+) pixels\)", str(error))
        raise _too_large(path, int(count[1]) if count else max_pixels + 1, max_pixels) from None
    except Exception as error:  # decoders raise many kinds for damaged or hostile files
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ImageReadError(f"{path} is not a readable image ({reason})") from error
    return _upright(pixels, metadata)


def _allow_in_pillow(max_pixels: int) -> None:
    """Pillow refuses images beyond twice its process-wide limit on its own; raise that
    limit (never lower it) when the caller allows more."""
    with _pillow_limit_lock:
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and limit < max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise _too_large(path, size[0] * size[1], max_pixels, f"{size[0]}x{size[1]} = ")


def _too_large(path: Path, pixels: int, max_pixels: int, size: str = "") -> ImageReadError:
    return ImageReadError(
        f"{path} is {size}{pixels / 1e6:.1f} megapixels, more than the limit of {max_pixels} "
        f"pixels that guards against decompression bombs; allow it with max_pixels "
        f"(fastsr upscale --max-pixels {pixels})"
    )


def _decode(path: Path, image: Image.Image, head: bytes) -> tuple[np.ndarray, Metadata]:
    png = head.startswith(_PNG_SIGNATURE) and len(head) >= 26 and head[12:16] == b"IHDR"
    if png and head[24] == 16 and head[25] in _PNG_DEEP_COLOUR:
        pixels = _read_deep_png(path, has_alpha=head[25] in (4, 6), grey=head[25] == 4)
    elif image.format == "TIFF" and _deep_colour_tiff(image):
        pixels = _tiff_pixels(path)
    else:
        image.load()
        pixels = None
    metadata = _pillow_metadata(image)
    if pixels is None:
        if image.mode in _OTHER_COLOUR_SPACES:
            metadata = replace(metadata, icc_profile=None)
        pixels = _pil_pixels(image)
    return pixels, metadata


def _pillow_metadata(image: Image.Image) -> Metadata:
    info = image.info
    block = info.get("exif") or None
    if block is not None and not block.startswith(exif.HEADER):
        block = exif.HEADER + block
    if image.format == "TIFF":  # TIFF's EXIF is its own tags: only the orientation travels
        block = exif.HEADER + _orientation_only(image.tag_v2.get(exif.ORIENTATION, 1))
    dpi = info.get("dpi")
    if dpi is not None and not (len(dpi) == 2 and min(dpi) > 0):
        dpi = None
    text = dict(image.text) if image.format == "PNG" else {}
    return Metadata(block, info.get("icc_profile") or None, dpi and tuple(map(float, dpi)), text)


def _orientation_only(orientation) -> bytes:
    """A minimal EXIF block holding one tag: the orientation (to be applied and reset)."""
    value = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    return b"II*\x00" + struct.pack("<IHHHIHH I", 8, 1, exif.ORIENTATION, 3, 1, value, 0, 0)


def _upright(pixels: np.ndarray, metadata: Metadata) -> tuple[np.ndarray, Metadata]:
    orientation = exif.read_tag(metadata.exif, exif.ORIENTATION) if metadata.exif else None
    turn = _ORIENTATIONS.get(orientation)
    if turn is None:
        return pixels, metadata
    dpi = metadata.dpi
    if dpi is not None and orientation >= 5:  # a quarter turn swaps the axes
        dpi = (dpi[1], dpi[0])
    block = exif.with_tags(metadata.exif, {exif.ORIENTATION: 1})
    return np.ascontiguousarray(turn(pixels)), replace(metadata, exif=block, dpi=dpi)


def _pil_pixels(image: Image.Image) -> np.ndarray:
    if image.mode in _CONVERT:
        target = _CONVERT[image.mode] or _palette_mode(image)
        image = image.convert(target)
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if image.mode == "I":  # 32-bit integer grey: what some 16-bit files open as
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise ImageReadError("32-bit integer images are not supported (values beyond 16 bits)")
        return values.astype(np.uint16)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageReadError(f"image mode {image.mode} is not supported")
    return np.asarray(image)


def _palette_mode(image: Image.Image) -> str:
    """A palette image reads as grey when every palette colour is grey, else as RGB."""
    colours = np.asarray(image.getpalette() or [], np.uint8).reshape(-1, 3)
    grey = bool((colours == colours[:, :1]).all())
    alpha = "transparency" in image.info
    return ("LA" if alpha else "L") if grey else ("RGBA" if alpha else "RGB")


def _read_deep_png(path: Path, has_alpha: bool, grey: bool) -> np.ndarray:
    av = _av()
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        pixels = frame.to_ndarray(format="rgba64le" if has_alpha else "rgb48le")
    return np.ascontiguousarray(pixels[..., [0, 3]]) if grey else pixels


def _av():
    try:
        import av
    except ImportError:
        raise ImageReadError(
            "16-bit colour PNG needs PyAV (pip install av) to keep 16 bits"
        ) from None
    return av


def _deep_colour_tiff(image: Image.Image) -> bool:
    bits = image.tag_v2.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return len(bits) > 1 and max(bits) > 8


def _tiff_pixels(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        pixels = page.asarray()
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"TIFF samples of type {pixels.dtype} are not supported")
    if pixels.ndim == 3 and page.planarconfig == 2 and pixels.shape[0] <= 4:  # planes first
        pixels = np.moveaxis(pixels, 0, -1)
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        raise ImageReadError(f"TIFF of shape {pixels.shape} is not an image fastsr reads")
    return np.ascontiguousarray(pixels)


def _read_tiff_only(path: Path, max_pixels: int) -> tuple[np.ndarray, Metadata]:
    """A TIFF Pillow cannot open: pixels, ICC profile, DPI and orientation via tifffile."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        _check_size(path, (page.imagewidth, page.imagelength), max_pixels)
        tags = {tag.code: tag.value for tag in page.tags}
    icc = tags.get(34675)
    dpi = None
    if tags.get(296) == 2 and 282 in tags and 283 in tags:  # resolution unit: inch
        dpi = tuple(float(n) / float(d) if d else 0.0 for n, d in (tags[282], tags[283]))
        dpi = dpi if min(dpi) > 0 else None
    orientation = exif.HEADER + _orientation_only(tags.get(274, 1))
    return _upright(_tiff_pixels(path), Metadata(orientation, icc or None, dpi))


# -- writing ------------------------------------------------------------------------------


def write_image(
    path,
    pixels: np.ndarray,
    metadata: Metadata | None = None,
    quality: int = DEFAULT_QUALITY,
    lossless: bool = False,
) -> None:
    """Write `pixels` (as `read_image` returns) in the format its suffix names, atomically.

    metadata: written where the format holds it (see the module docstring).
    quality: 1-100 for JPEG (4:4:4 chroma) and lossy WebP; lossless: WebP without loss
        (PNG, TIFF and BMP always are; JPEG cannot be).
    """
    path = Path(path)
    image_format = FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(
            f"cannot tell the image format of {path.name}: expected a suffix among "
            f"{', '.join(FORMATS)}"
        )
    check_quality(quality)
    if lossless and image_format == "JPEG":
        raise ValueError("JPEG cannot be lossless; write .webp or .png for a lossless file")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if image_format in _NO_ALPHA and channels in (2, 4):
        raise ValueError(f"{image_format} has no alpha channel; write {path.stem}.png instead")
    tmp = path.with_name(f".{path.stem}.fastsr-partial{path.suffix}")
    try:
        _write(tmp, pixels, image_format, metadata or Metadata(), quality, lossless)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_quality(quality) -> None:
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be a whole number from 1 to 100, got {quality!r}")


def _write(path: Path, pixels: np.ndarray, image_format: str, metadata: Metadata,
           quality: int, lossless: bool) -> None:  # fmt: skip
    deep, colour = pixels.dtype == np.uint16, pixels.ndim == 3
    if deep and colour and image_format == "PNG":
        _write_deep_png(path, pixels)
        _insert_png_chunks(path, _png_metadata_chunks(metadata))
        return
    if deep and colour and image_format == "TIFF":
        _write_deep_tiff(path, pixels, metadata)
        return
    if deep and image_format not in ("PNG", "TIFF"):
        # the format (or Pillow) holds 8 bits per channel: round 16-bit values down to it
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    options = _SAVE_OPTIONS[image_format](metadata, quality, lossless)
    Image.fromarray(pixels).save(path, format=image_format, **options)


def _common(metadata: Metadata, *fields: str) -> dict:
    values = {"exif": metadata.exif, "icc_profile": metadata.icc_profile, "dpi": metadata.dpi}
    return {name: values[name] for name in fields if values[name]}


def _png_options(metadata: Metadata, quality: int, lossless: bool) -> dict:
    options = _common(metadata, "exif", "icc_profile", "dpi")
    if metadata.text:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.text.items():
            info.add_itxt(key, value)
        options["pnginfo"] = info
    return options


_SAVE_OPTIONS = {
    "PNG": _png_options,
    "JPEG": lambda m, q, lossless: {
        "quality": q, "subsampling": 0, **_common(m, "exif", "icc_profile", "dpi")
    },
    "WEBP": lambda m, q, lossless: {
        "quality": q, "lossless": lossless, "exact": lossless, **_common(m, "exif", "icc_profile")
    },
    "TIFF": lambda m, q, lossless: _common(m, "exif", "icc_profile", "dpi"),
    "BMP": lambda m, q, lossless: _common(m, "dpi"),
}  # fmt: skip


def _write_deep_png(path: Path, pixels: np.ndarray) -> None:
    av = _av()
    if pixels.shape[2] == 2:  # 16-bit grey + alpha: stored as RGBA, which PyAV can write
        pixels = pixels[..., [0, 0, 0, 1]]
    has_alpha = pixels.shape[2] == 4
    # update=1: one image at exactly this name (no %d frame-number patterns)
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream("png")
        stream.height, stream.width = pixels.shape[:2]
        stream.pix_fmt = "rgba64be" if has_alpha else "rgb48be"
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(pixels), format="rgba64le" if has_alpha else "rgb48le"
        )
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_metadata_chunks(metadata: Metadata) -> bytes:
    """iCCP, pHYs, eXIf and iTXt chunks for a PNG written without Pillow."""
    chunks = []
    if metadata.icc_profile:
        profile = zlib.compress(metadata.icc_profile)
        chunks.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + profile))
    if metadata.dpi:
        per_metre = [round(d / 0.0254) for d in metadata.dpi]
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    if metadata.exif:
        chunks.append(_png_chunk(b"eXIf", metadata.exif.removeprefix(exif.HEADER)))
    for key, value in metadata.text.items():
        header = key.encode("latin-1", "replace")[:79] + b"\x00\x00\x00\x00\x00"
        chunks.append(_png_chunk(b"iTXt", header + value.encode("utf-8")))
    return b"".join(chunks)


def _insert_png_chunks(path: Path, chunks: bytes) -> None:
    if not chunks:
        return
    data = path.read_bytes()
    after_header = len(_PNG_SIGNATURE) + 8 + 13 + 4  # signature, IHDR length/type, data, CRC
    path.write_bytes(data[:after_header] + chunks + data[after_header:])


def _write_deep_tiff(path: Path, pixels: np.ndarray, metadata: Metadata) -> None:
    import tifffile

    grey = pixels.shape[2] == 2
    options = {}
    if metadata.dpi:
        options = {"resolution": metadata.dpi, "resolutionunit": "INCH"}
    tifffile.imwrite(
        path, pixels,
        photometric="minisblack" if grey else "rgb",
        extrasamples=["unassalpha"] if pixels.shape[2] in (2, 4) else None,
        compression="zlib",
        iccprofile=metadata.icc_profile,
        metadata=None,
        **options,
    )  # fmt: skip
