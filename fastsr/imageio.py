"""Images in memory: numpy arrays, PIL images and torch tensors.

`as_pixels` validates what the caller has and views it as N x H x W x C in its own
dtype, with a way to hand a result back as the same kind, layout and dtype. (Image
files are `fastsr.imagefile`'s.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

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
