"""Images in memory: what the caller has (numpy, Pillow, torch), validated once and viewed
as N x H x W x C in its own dtype, with the way back to the same kind, layout and dtype.

torch and Pillow are never imported here: an image of theirs means the caller already
has them loaded, so they are looked up in `sys.modules`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# numpy dtype (kind, itemsize) -> integer value of full intensity (None: float in [0, 1])
_NUMPY_RANGES = {("u", 1): 255, ("u", 2): 65535, ("f", 2): None, ("f", 4): None, ("f", 8): None}
_TORCH_RANGES = {"uint8": 255, "uint16": 65535, "float16": None, "bfloat16": None,
                 "float32": None, "float64": None}  # fmt: skip
_DTYPE_NAMES = "uint8, uint16, float16, float32 or float64"
_PIL_MODES = ("L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B")  # kept as they come


@dataclass
class PixelView:
    """A validated image: an N x H x W x C view in its own dtype, and the way back out.

    `pixels` is a numpy array, except for images on a GPU (a torch tensor there). The
    result is allocated once, in the caller's dtype and layout, and filled window by
    window, so no full-size float copy of a big frame ever exists.
    """

    pixels: object  # N x H x W x C, the input's dtype (a view when possible)
    full: int | None  # the integer value of full intensity; None for floats in [0, 1]
    new_output: Callable[[int, int], object]  # (sH, sW) -> N x sH x sW x C to fill
    restore: Callable[[object], object]  # that filled array -> what the caller gets

    @property
    def device(self) -> str:
        return "cpu" if isinstance(self.pixels, np.ndarray) else self.pixels.device.type


def _torch():
    return sys.modules.get("torch")


def is_torch_tensor(value) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.Tensor)


def _is_pil_image(value) -> bool:
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(value, pil.Image)


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
    if not array.dtype.isnative:  # the kernels read native byte order: convert once
        nhwc = nhwc.astype(dtype)

    def new_output(height: int, width: int) -> np.ndarray:
        return np.empty((nhwc.shape[0], height, width, nhwc.shape[3]), dtype)

    def restore(out: np.ndarray) -> np.ndarray:
        if array.ndim == 2:
            return out[0, :, :, 0]
        return out[0] if array.ndim == 3 else out

    return PixelView(nhwc, _NUMPY_RANGES[key], new_output, restore)


def _from_torch(tensor) -> PixelView:
    torch = _torch()
    dtype_name = str(tensor.dtype).removeprefix("torch.")
    if dtype_name not in _TORCH_RANGES:
        raise TypeError(f"expected a tensor of {_DTYPE_NAMES}, got {tensor.dtype}")
    if tensor.ndim not in (3, 4) or tensor.shape[-3] not in (1, 2, 3, 4):
        raise _layout_error("a C x H x W or N x C x H x W tensor", tensor.shape)
    batched = tensor.ndim == 4
    nchw = tensor.detach() if batched else tensor.detach()[None]
    _check_size((nchw.shape[0], *nchw.shape[2:]), tensor.shape)
    on_cpu = tensor.device.type == "cpu"
    # numpy has no bfloat16: such a CPU tensor goes through float32 and back.
    work_dtype = torch.float32 if on_cpu and tensor.dtype == torch.bfloat16 else tensor.dtype

    def new_output(height: int, width: int):
        shape = (nchw.shape[0], nchw.shape[1], height, width)
        out = torch.empty(shape, dtype=work_dtype, device=tensor.device).permute(0, 2, 3, 1)
        return out.numpy() if on_cpu else out

    def restore(out):
        if on_cpu:
            out = torch.from_numpy(out)
        result = out.permute(0, 3, 1, 2).to(tensor.dtype)  # the N x C x H x W tensor
        return result if batched else result[0]

    pixels = nchw.permute(0, 2, 3, 1)
    if on_cpu:
        pixels = pixels.to(work_dtype).numpy()
    return PixelView(pixels, _TORCH_RANGES[dtype_name], new_output, restore)


def _from_pil(image) -> PixelView:
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
    pil = sys.modules["PIL.Image"]

    def restore(out: np.ndarray):
        return pil.fromarray(as_array.restore(out))

    return PixelView(as_array.pixels, as_array.full, as_array.new_output, restore)


def as_pixels(image) -> PixelView:
    """Validate `image` (kind, layout, dtype, size, values) and view it as N x H x W x C."""
    if isinstance(image, np.ndarray):
        source = _from_numpy(image)
    elif is_torch_tensor(image):
        source = _from_torch(image)
    elif _is_pil_image(image):
        source = _from_pil(image)
    else:
        raise TypeError(
            f"expected a numpy array, a PIL image or a torch tensor, got {type(image).__name__}"
        )
    if source.full is None:
        pixels = source.pixels
        finite = np.isfinite(pixels).all() if isinstance(pixels, np.ndarray) else (
            _torch().isfinite(pixels).all().item()
        )
        if not finite:
            raise ValueError("expected finite pixel values, got NaN or infinity in the image")
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"expected float pixel values in [0, 1], got values from {low:g} to {high:g} "
                "(divide 8-bit values by 255, or pass the uint8 array itself)"
            )
    return source


def constant_alpha(source: PixelView):
    """The alpha value (in the image's dtype) of an image whose alpha is the same everywhere
    (opaque, mostly), else None.

    Decided on the whole image, never per tile, so tiling cannot change the result.
    """
    channels = source.pixels.shape[3]
    if channels not in (2, 4):
        return None
    alpha = source.pixels[..., channels - 1]
    first = alpha[0, 0, 0]
    return first if bool((alpha == first).all()) else None
