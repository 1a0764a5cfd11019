"""Image files in and out (images in memory are `fastsr.pixels`).

Pillow reads and writes most formats but holds 16-bit colour only as 8-bit;
16-bit colour PNGs therefore go through PyAV's PNG codec (FFmpeg), which keeps all 16
bits. Writes go to a temporary sibling file that is renamed over the target at the end,
so an error never leaves a half-written image behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# -- image files --------------------------------------------------------------------------

# suffix -> Pillow format name
FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF",
}  # fmt: skip
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GREY = (0, 3)  # PNG colour types Pillow keeps at 16 bits (grey) or are 8-bit (palette)
_NO_ALPHA = ("JPEG", "BMP")
# Pillow modes -> the mode to convert to before reading pixels
_CONVERT = {"1": "L", "P": None, "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in FORMATS


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG file, None for anything else."""
    with open(path, "rb") as file:
        head = file.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def read_image(path) -> np.ndarray:
    """H x W (grey), H x W x 2 (grey + alpha), x 3 (RGB) or x 4 (RGBA); uint8 or uint16."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    header = _png_header(path)
    if header is not None and header[0] == 16 and header[1] not in _PNG_GREY:
        return _read_deep_png(path, has_alpha=header[1] in (4, 6), grey=header[1] == 4)
    try:
        with Image.open(path) as image:
            image.load()
            return _pil_pixels(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path} is not a readable image: {error}") from None


def _pil_pixels(image: Image.Image) -> np.ndarray:
    if image.mode in _CONVERT:
        target = _CONVERT[image.mode]
        if target is None:  # palette: keep transparency if it has some
            target = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(target)
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if image.mode == "I":  # 32-bit integer grey: what some 16-bit files open as
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError("32-bit integer images are not supported (values beyond 16 bits)")
        return values.astype(np.uint16)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ValueError(f"image mode {image.mode} is not supported")
    return np.asarray(image)


def _av():
    try:
        import av
    except ImportError:
        raise ValueError("16-bit colour PNG needs PyAV (pip install av) to keep 16 bits") from None
    return av


def _read_deep_png(path: Path, has_alpha: bool, grey: bool) -> np.ndarray:
    av = _av()
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            pixels = frame.to_ndarray(format="rgba64le" if has_alpha else "rgb48le")
    except (av.FFmpegError, StopIteration) as error:
        raise ValueError(f"{path} is not a readable image: {error}") from None
    return np.ascontiguousarray(pixels[..., [0, 3]]) if grey else pixels


def write_image(path, pixels: np.ndarray) -> None:
    """Write `pixels` (as `read_image` returns) in the format its suffix names, atomically."""
    path = Path(path)
    image_format = FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(
            f"cannot tell the image format of {path.name}: expected a suffix among "
            f"{', '.join(FORMATS)}"
        )
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if image_format in _NO_ALPHA and channels in (2, 4):
        raise ValueError(f"{image_format} has no alpha channel; write {path.stem}.png instead")
    tmp = path.with_name(f".{path.stem}.fastsr-partial{path.suffix}")
    try:
        _write(tmp, pixels, image_format, channels)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write(path: Path, pixels: np.ndarray, image_format: str, channels: int) -> None:
    deep = pixels.dtype == np.uint16
    if deep and image_format == "PNG" and channels > 1:
        _write_deep_png(path, pixels)
        return
    if deep and not (image_format in ("PNG", "TIFF") and channels == 1):
        # the format (or Pillow) holds 8 bits per channel: round 16-bit values down to it
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=image_format)


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
