"""int8 Winograd F(2x2, 3x3) in numpy: the taps' calibration and the weights' quantisation
(csrc/winograd_int8.h runs the conv).

The input's taps V = B^T d B (d = u8 - zero, per 4x4 patch at stride 2) are integers;
each of the 16 is requantised with its own scale to u8 around 128 by a Q15 fixed-point
multiply (`quantize_taps`, the kernel's integer rule), the scales calibrated on the same
activations as the input's u8 scale (`meta["int8"]["winograd"][tensor]`). The weights'
taps G g G^T are quantised per (tap, output channel) to |q| <= INT8_WEIGHT_MAX.
"""

from __future__ import annotations

import numpy as np

from fastsr.quantize import INT8_WEIGHT_MAX, value_range

TAPS = 16
TAP_ZERO = 128
TRANSFORM = "F(2x2,3x3)"  # meta["int8"]["winograd"]["transform"]: what the scales are of
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def input_taps(d: np.ndarray) -> np.ndarray:
    """N x H x W x C integers (u8 - zero) -> (16, N, tiles_h, tiles_w, C) taps B^T d B, the
    patches zero outside the image (the conv's padding 1 and the odd sizes' last tile)."""
    n, h, w, c = d.shape
    th, tw = (h + 1) // 2, (w + 1) // 2
    padded = np.zeros((n, 2 * th + 2, 2 * tw + 2, c), np.float64)
    padded[:, 1 : h + 1, 1 : w + 1] = d
    patches = np.lib.stride_tricks.sliding_window_view(padded, (4, 4), axis=(1, 2))[:, ::2, ::2]
    taps = np.einsum("ia,ntwcab,jb->ijntwc", BT, patches, BT)  # patches: n, th, tw, c, 4, 4
    return taps.reshape(TAPS, n, th, tw, c)


def tap_requantizers(tap_scale) -> tuple[np.ndarray, np.ndarray]:
    """Per tap (shift, mult): mult = round(2^15 / (s * 2^shift)), shift the least in [0, 5]
    with mult < 2^15 (|V| <= 1020, so V << 5 fits int16); below s = 2^-5 mult saturates."""
    s = np.asarray(tap_scale, np.float32).astype(np.float64)
    shift = np.zeros(s.shape, np.int64)
    for _ in range(5):
        shift += s * np.exp2(shift) < 1
    mult = np.minimum(32767, np.rint(32768 / (s * np.exp2(shift)))).astype(np.int64)
    return shift, mult


def quantize_taps(taps: np.ndarray, tap_scale) -> np.ndarray:
    """Integer taps (16, ...) -> u8 around TAP_ZERO as the kernel rounds them (vpmulhrsw):
    clamp((((V << shift) * mult + 2^14) >> 15) + 128, 0, 255)."""
    shift, mult = (a.reshape(-1, *[1] * (taps.ndim - 1)) for a in tap_requantizers(tap_scale))
    r = ((taps.astype(np.int64) << shift) * mult + (1 << 14)) >> 15
    return np.clip(r + TAP_ZERO, 0, 255).astype(np.uint8)


def tap_scale(values: np.ndarray, estimator: str) -> float:
    """The scale of one tap's u8 around TAP_ZERO: [-128, 127] steps cover its range."""
    lo, hi = value_range(values, estimator)
    return max(-lo / TAP_ZERO, hi / (255 - TAP_ZERO), 1e-6)


def calibrate_taps(activations: list[np.ndarray], scale: float, zero: int, estimator: str) -> list:
    """The 16 tap scales of a tensor (NHWC float32 arrays) read through u8 (scale, zero)."""
    inv = np.float32(1 / scale)
    taps = []
    for x in activations:
        q = np.rint(np.clip(x.astype(np.float32) * inv + np.float32(zero), 0, 255))
        taps.append(input_taps(q - zero).reshape(TAPS, -1))
    taps = np.concatenate(taps, axis=1).astype(np.float32)
    return [float(tap_scale(t, estimator)) for t in taps]


def quantize_winograd_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OIHW 3x3 float -> (int8 (16, O, I) taps of G g G^T, float32 scale per (tap, O))."""
    u = np.einsum("ia,ocab,jb->ijoc", G, weight.astype(np.float64), G)
    u = u.reshape(TAPS, *weight.shape[:2])
    peak = np.abs(u).max(axis=2)
    scale = np.where(peak > 0, peak / INT8_WEIGHT_MAX, 1.0)
    q = np.clip(np.rint(u / scale[..., None]), -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX)
    return q.astype(np.int8), scale.astype(np.float32)


def check_tap_scales(tensor: str, scales) -> list[float]:
    """The 16 positive finite scales of a calibration's `tensor`, or a ValueError."""
    values = np.asarray(scales, dtype=np.float64) if isinstance(scales, list) else None
    if values is None or values.shape != (TAPS,) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(
            f"int8 calibration: the Winograd tap scales of {tensor!r} must be {TAPS} positive "
            f"finite numbers, got {scales!r}"
        )
    return [float(v) for v in values]
