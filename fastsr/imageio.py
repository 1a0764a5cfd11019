"""Images in and out: numpy arrays, PIL images and torch tensors in memory, and files.

In memory, `as_pixels` validates what the caller has and views it as N x H x W x C in
its own dtype, with a way to hand a result back as the same kind, layout and dtype.

On disk, Pillow reads and writes most formats but holds 16-bit colour only as 8-bit;
16-bit colour PNGs therefore go through PyAV's PNG codec (FFmpeg), which keeps all 16
bits. Writes go to a temporary sibling file that is renamed over the target at the end,
so an error never leaves a half-written image behind.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
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


# -- images in memory: numpy arrays, PIL images, torch tensors ---------------------------

# dtype (kind, bytes) -> the value that means full intensity; None: floats in [0, 1]
_NUMPY_RANGES = {("u", 1): 255, ("u", 2): 65535, ("f", 2): None, ("f", 4): None, ("f", 8): None}
_TORCH_RANGES = {
    torch.uint8: 255,
    torch.uint16: 65535,
    torch.float16: None,
    torch.bfloat16: None,
    torch.float32: None,
    torch.float64: None,
}
_DTYPE_NAMES = "uint8, uint16, float16, float32 or float64"
_PIL_MODES = ("L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B")  # kept as they come


@dataclass
class PixelView:
    """A validated image: an N x H x W x C view in its own dtype, and the way back out.

    The result is allocated once, in the caller's dtype and layout, and filled tile by
    tile, so no full-size float copy of a big frame ever exists.
    """

    pixels: torch.Tensor  # N x H x W x C, the input's dtype and device (a view when possible)
    full: int | None  # the integer value of full intensity; None for floats in [0, 1]
    new_output: Callable[[int, int], torch.Tensor]  # (sH, sW) -> N x sH x sW x C to fill
    restore: Callable[[torch.Tensor], object]  # that filled tensor -> what the caller gets


def _layout_error(what: str, shape) -> ValueError:
    return ValueError(
        f"expected {what} with 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels, "
        f"got shape {tuple(shape)}"
    )


def _check_size(nhw, shape) -> None:
    if min(nhw) == 0:
        raise ValueError(f"expected a non-empty image, got shape {tuple(shape)}")


def _from_numpy(array: np.ndarray) -> PixelView:
    key = (array.dtype.kind, array.dtype.itemsize)
    if key not in _NUMPY_RANGES:
        raise TypeError(f"expected an array of {_DTYPE_NAMES}, got dtype {array.dtype}")
    if array.ndim == 2:
        nhwc = array[None, :, :, None]
    elif array.ndim in (3, 4) and array.shape[-1] in (1, 2, 3, 4):
        nhwc = array[None] if array.ndim == 3 else array
    else:
        raise _layout_error("an H x W, H x W x C or N x H x W x C array", array.shape)
    _check_size(nhwc.shape[:3], array.shape)
    dtype = array.dtype.newbyteorder("=")
    if min(nhwc.strides) < 0 or not array.dtype.isnative:  # torch takes neither: copy once
        nhwc = np.array(nhwc, dtype=dtype)  # (ascontiguousarray keeps size-1 negative strides)

    def new_output(height: int, width: int) -> torch.Tensor:
        return torch.from_numpy(np.empty((nhwc.shape[0], height, width, nhwc.shape[3]), dtype))

    def restore(out: torch.Tensor) -> np.ndarray:
        result = out.numpy()
        if array.ndim == 2:
            return result[0, :, :, 0]
        return result[0] if array.ndim == 3 else result

    with warnings.catch_warnings():  # read-only arrays are fine: the input is only read
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        pixels = torch.from_numpy(nhwc)
    return PixelView(pixels, _NUMPY_RANGES[key], new_output, restore)


def _from_torch(tensor: torch.Tensor) -> PixelView:
    if tensor.dtype not in _TORCH_RANGES:
        raise TypeError(f"expected a tensor of {_DTYPE_NAMES}, got {tensor.dtype}")
    if tensor.ndim not in (3, 4) or tensor.shape[-3] not in (1, 2, 3, 4):
        raise _layout_error("a C x H x W or N x C x H x W tensor", tensor.shape)
    batched = tensor.ndim == 4
    nchw = tensor.detach() if batched else tensor.detach()[None]
    _check_size((nchw.shape[0], *nchw.shape[2:]), tensor.shape)

    def new_output(height: int, width: int) -> torch.Tensor:
        shape = (nchw.shape[0], nchw.shape[1], height, width)
        return torch.empty(shape, dtype=tensor.dtype, device=tensor.device).permute(0, 2, 3, 1)

    def restore(out: torch.Tensor) -> torch.Tensor:
        result = out.permute(0, 3, 1, 2)  # the N x C x H x W tensor new_output allocated
        return result if batched else result[0]

    return PixelView(nchw.permute(0, 2, 3, 1), _TORCH_RANGES[tensor.dtype], new_output, restore)


def _from_pil(image: Image.Image) -> PixelView:
    mode = image.mode
    if mode == "P":  # a palette cannot hold new colours: come back as RGB(A)
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in _PIL_MODES:
        raise ValueError(
            f"expected a PIL image in mode {', '.join(_PIL_MODES)} or P, got mode {mode}; "
            "convert it first, e.g. image.convert('RGB')"
        )
    array = np.asarray(image).astype(np.uint16 if image.mode.startswith("I;16") else np.uint8)
    as_array = _from_numpy(array)

    def restore(out: torch.Tensor) -> Image.Image:
        return Image.fromarray(as_array.restore(out))

    return PixelView(as_array.pixels, as_array.full, as_array.new_output, restore)


def as_pixels(image) -> PixelView:
    """Validate `image` (kind, layout, dtype, size, values) and view it as N x H x W x C."""
    if isinstance(image, np.ndarray):
        source = _from_numpy(image)
    elif isinstance(image, torch.Tensor):
        source = _from_torch(image)
    elif isinstance(image, Image.Image):
        source = _from_pil(image)
    else:
        raise TypeError(
            f"expected a numpy array, a PIL image or a torch tensor, got {type(image).__name__}"
        )
    if source.full is None:
        pixels = source.pixels
        if not torch.isfinite(pixels).all():
            raise ValueError("expected finite pixel values, got NaN or infinity in the image")
        low, high = pixels.min().item(), pixels.max().item()
        if low < 0 or high > 1:
            raise ValueError(
                f"expected float pixel values in [0, 1], got values from {low:g} to {high:g} "
                "(divide 8-bit values by 255, or pass the uint8 array itself)"
            )
    return source


def to_unit(values: torch.Tensor, full: int | None) -> torch.Tensor:
    values = values.to(torch.float32)
    return values / full if full is not None else values


def from_unit(values: torch.Tensor, full: int | None, dtype: torch.dtype) -> torch.Tensor:
    if full is None:
        return values.to(dtype)
    return (values * full).round_().to(dtype)


def constant_alpha(source: PixelView) -> float | None:
    """The alpha value of an image whose alpha is the same everywhere (opaque, mostly).

    Decided on the whole image, never per tile, so tiling cannot change the result.
    """
    channels = source.pixels.shape[3]
    if channels not in (2, 4):
        return None
    alpha = source.pixels[..., channels - 1]
    first = alpha[0, 0, 0]
    if not (alpha == first).all():  # (torch has no min/max for uint16)
        return None
    return to_unit(first, source.full).item()
