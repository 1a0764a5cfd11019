"""Images, MATLAB-compatible bicubic resizing and LR/HR training patches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Set5 `woman` is a downscaled copy of this BSD200 training image.
HELD_OUT_TRAINING_IMAGES = frozenset({"302003"})


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image as HxWx3 uint8; grayscale images are replicated to three channels."""
    return np.asarray(Image.open(path).convert("RGB"))


def is_grayscale(path: str | Path) -> bool:
    with Image.open(path) as image:
        return image.mode in {"1", "L", "LA", "I", "I;16"}


def image_paths(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".png", ".bmp"})


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def _cubic(x: np.ndarray) -> np.ndarray:
    # Keys cubic with a = -0.5, the kernel MATLAB's imresize uses.
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    inner = 1.5 * ax3 - 2.5 * ax2 + 1
    outer = -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2
    return np.where(ax <= 1, inner, np.where(ax <= 2, outer, 0.0))


def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """The (out_len, in_len) matrix MATLAB's imresize applies along one axis.

    When shrinking, the kernel is stretched by 1/scale (antialiasing); samples
    outside the image are mirrored back in (MATLAB's symmetric padding).
    """
    antialias = scale < 1
    width = 4.0 / scale if antialias else 4.0
    out_pos = np.arange(1, out_len + 1, dtype=np.float64)
    centres = out_pos / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(centres - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = centres[:, None] - indices
    weights = scale * _cubic(scale * distance) if antialias else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirrored = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    columns = mirrored[(indices.astype(np.int64) - 1) % (2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(matrix, (rows, columns.ravel()), weights.ravel())
    return matrix


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(image, scale, 'bicubic')` for HxW or HxWxC arrays.

    uint8 input gives uint8 output (rounded and clipped, as MATLAB does);
    float input gives float64 output.
    """
    h, w = image.shape[:2]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    rows = resize_matrix(h, out_h, scale)
    cols = resize_matrix(w, out_w, scale)
    # tensordot (BLAS) on the first axis, then on the second, which has moved to the end.
    out = np.tensordot(rows, image.astype(np.float64), axes=(1, 0))
    out = np.moveaxis(np.tensordot(cols, out, axes=(1, 1)), 0, 1)
    if image.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def degrade(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard bicubic degradation: mod-cropped HR and its MATLAB-bicubic LR, both uint8."""
    hr = mod_crop(hr, scale)
    return imresize(hr, 1 / scale), hr


class PatchSampler:
    """Random aligned LR/HR patches from LR/HR pairs degraded once and kept in memory."""

    def __init__(self, folders: list[Path], scale: int, lr_patch: int, seed: int = 0) -> None:
        self.scale = scale
        self.lr_patch = lr_patch
        self.pairs = []
        for folder in folders:
            for path in image_paths(folder):
                if path.stem in HELD_OUT_TRAINING_IMAGES:
                    continue
                lr, hr = degrade(load_rgb(path), scale)
                if min(lr.shape[:2]) >= lr_patch:
                    self.pairs.append((lr, hr))
        areas = np.array([lr.shape[0] * lr.shape[1] for lr, _ in self.pairs], dtype=np.float64)
        self.image_weights = areas / areas.sum()
        self.rng = np.random.default_rng(seed)

    def sample(
        self, batch: int, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of (LR, HR) float tensors in [0, 1], Nx3xhxw and Nx3x(h*s)x(w*s), drawn
        with `rng` if given, else with the sampler's own (checkpointed) generator."""
        rng = self.rng if rng is None else rng
        s, p = self.scale, self.lr_patch
        lrs, hrs = [], []
        picks = rng.choice(len(self.pairs), size=batch, p=self.image_weights)
        for index in picks:
            lr, hr = self.pairs[index]
            y = int(rng.integers(0, lr.shape[0] - p + 1))
            x = int(rng.integers(0, lr.shape[1] - p + 1))
            lr_crop = lr[y : y + p, x : x + p]
            hr_crop = hr[y * s : (y + p) * s, x * s : (x + p) * s]
            turns, flip = int(rng.integers(4)), bool(rng.integers(2))
            lrs.append(_augment(lr_crop, turns, flip))
            hrs.append(_augment(hr_crop, turns, flip))
        return _to_tensor(np.stack(lrs)), _to_tensor(np.stack(hrs))

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def _augment(patch: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    patch = np.rot90(patch, turns)
    return patch[:, ::-1] if flip else patch


def _to_tensor(batch_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch_hwc)).permute(0, 3, 1, 2).float() / 255
