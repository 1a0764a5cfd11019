"""Video frames as YUV planes through the C++ image stage (Program.run_yuv), against an
independent numpy/torch reference of the colour maths (ITU quantisation, BT.601/BT.709
matrices, chroma resampling) around the eager PyTorch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_api import TinySR, eager, one_torch_thread, tiny_graph  # noqa: F401

import fastsr
from fastsr.backends import backend_status
from fastsr.color import RGB_TO_YCBCR, YCBCR_OFFSET

pytestmark = pytest.mark.skipif(backend_status()["cpu"] is not None, reason="no C++ backend")

KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
SHIFTS = {"420": (1, 1), "422": (0, 1), "444": (0, 0)}


def to_ypbpr(kr: float, kb: float) -> np.ndarray:
    """R'G'B' -> Y'PbPr, written out from the matrix's definition."""
    kg = 1 - kr - kb
    y = np.array([kr, kg, kb])
    return np.stack(
        [y, (np.array([0, 0, 1]) - y) / (2 * (1 - kb)), (np.array([1, 0, 0]) - y) / (2 * (1 - kr))]
    )


def quantisation(bits: int, full: bool) -> tuple[float, float, float, float]:
    """(luma low, luma range, chroma middle, chroma range) in codes."""
    if full:
        top = 2.0**bits - 1
        return 0.0, top, 2.0 ** (bits - 1), top
    step = 2.0 ** (bits - 8)
    return 16 * step, 219 * step, 128 * step, 224 * step


def random_planes(h, w, shift, bits, seed=0):
    """Smooth random planes (an upscaled coarse grid plus noise): edges and flat areas."""
    rng = np.random.default_rng(seed)
    top, dtype = 2**bits - 1, np.uint8 if bits == 8 else np.uint16

    def plane(ph, pw):
        coarse = torch.from_numpy(rng.random((1, 1, ph // 3 + 2, pw // 3 + 2)))
        smooth = F.interpolate(coarse, size=(ph, pw), mode="bilinear")[0, 0].numpy()
        return np.clip((0.1 + 0.8 * smooth + 0.05 * rng.random((ph, pw))) * top, 0, top).astype(
            dtype
        )

    ch, cw = -(-h // 2 ** shift[0]), -(-w // 2 ** shift[1])
    return plane(h, w), plane(ch, cw), plane(ch, cw)


def resample(plane: np.ndarray, factor: tuple[int, int], mode: str, size) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(plane, np.float64))[None, None]
    y = F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)[0, 0].numpy()
    return y[: size[0], : size[1]]


def keys_cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.75 (PyTorch's bicubic)."""
    a, t = -0.75, np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def chroma_positions(count: int, shift: int, cosited: bool) -> np.ndarray:
    """Where chroma samples lie in luma samples: on the first luma of each 2^shift block
    (co-sited) or at its centre."""
    step = 2**shift
    return step * np.arange(count) + (0.0 if cosited else (step - 1) / 2)


def interpolation_matrix(positions: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Rows: the weights of the `size` inputs read at each (fractional) input position,
    the border clamped (bicubic) or the position clamped (bilinear), as PyTorch does."""
    m = np.zeros((len(positions), size))
    for o, p in enumerate(positions):
        if mode == "bicubic":
            i0 = int(np.floor(p))
            for i in range(i0 - 1, i0 + 3):
                m[o, min(max(i, 0), size - 1)] += keys_cubic(p - i)
        else:
            p = min(max(p, 0.0), size - 1.0)
            i0 = int(p)
            m[o, i0] += 1 - (p - i0)
            m[o, min(i0 + 1, size - 1)] += p - i0
    return m


def box_matrix(count: int, size: int, shift: int, cosited: bool) -> np.ndarray:
    """Chroma from luma-grid values: each block's mean, or for co-sited chroma a box of
    the block's width centred on its first sample (1/4, 1/2, 1/4), clamped at the edges."""
    m, step = np.zeros((count, size)), 2**shift
    for o in range(count):
        if cosited and shift:
            for k, weight in ((-1, 0.25), (0, 0.5), (1, 0.25)):
                m[o, min(max(step * o + k, 0), size - 1)] += weight
        else:
            end = min(size, step * (o + 1))
            m[o, step * o : end] = 1 / (end - step * o)
    return m


def sited_upscale(plane, src_shift, src_sites, dst_shift, dst_sites, scale, mode, size):
    """Chroma from the source's sites to the target grid's (dst_shift 0 and scale 1: the
    source's own luma grid): each target sample's place in source luma samples, then in
    source chroma samples, read by the interpolation kernel."""
    mats = []
    for axis in range(2):
        target = chroma_positions(size[axis], dst_shift[axis], dst_sites[axis])
        in_luma = (target + 0.5) / scale - 0.5
        offset = 0.0 if src_sites[axis] else (2 ** src_shift[axis] - 1) / 2
        mats.append(interpolation_matrix((in_luma - offset) / 2 ** src_shift[axis],
                                         plane.shape[axis], mode))  # fmt: skip
    return mats[0] @ plane @ mats[1].T


def sited_downsample(plane, shift, sites, size):
    return box_matrix(size[0], plane.shape[0], shift[0], sites[0]) @ plane @ box_matrix(
        size[1], plane.shape[1], shift[1], sites[1]
    ).T


def reference(module, color, planes, src_shift, dst_shift, scale, bits, full, kr, kb,
              src_sites=(False, False), dst_sites=(False, False)):  # fmt: skip
    lo, luma_range, mid, chroma_range = quantisation(bits, full)
    to_yuv = to_ypbpr(kr, kb)
    planes = [p.astype(np.float64) for p in planes]
    y = np.clip((planes[0] - lo) / luma_range, 0, 1)
    pb, pr = (np.clip((p - mid) / chroma_range, -0.5, 0.5) for p in planes[1:])
    h, w = y.shape
    if color == "y":  # the model's luma, BT.601 studio range, from the video's Y'PbPr
        luma = RGB_TO_YCBCR[0] @ np.linalg.inv(to_yuv)
        near = [
            np.repeat(np.repeat(p, 2 ** src_shift[0], 0), 2 ** src_shift[1], 1)[:h, :w]
            for p in (pb, pr)
        ]
        model_in = YCBCR_OFFSET[0] + luma[0] * y + luma[1] * near[0] + luma[2] * near[1]
        model_out = eager(module, model_in[None, ..., None], clamp=False)[0, ..., 0]
        H, W = model_out.shape
        csize = (-(-H // 2 ** dst_shift[0]), -(-W // 2 ** dst_shift[1]))
        out_c = [
            np.clip(sited_upscale(p, src_shift, src_sites, dst_shift, dst_sites, scale,
                                  "bicubic", csize), -0.5, 0.5)  # fmt: skip
            for p in (pb, pr)
        ]
        near = [
            np.repeat(np.repeat(p, 2 ** dst_shift[0], 0), 2 ** dst_shift[1], 1)[:H, :W]
            for p in out_c
        ]
        out_y = np.clip(
            (model_out - YCBCR_OFFSET[0] - luma[1] * near[0] - luma[2] * near[1]) / luma[0], 0, 1
        )
    else:  # R'G'B' from chroma brought to the luma grid bilinearly, back by block means
        up = [
            sited_upscale(p, src_shift, src_sites, (0, 0), (False, False), 1, "bilinear", (h, w))
            for p in (pb, pr)
        ]
        rgb = np.clip(np.einsum("ij,jhw->hwi", np.linalg.inv(to_yuv), np.stack([y, *up])), 0, 1)
        out = np.einsum("ij,hwj->ihw", to_yuv, eager(module, rgb[None], clamp=True)[0])
        out_y = np.clip(out[0], 0, 1)
        H, W = out.shape[1:]
        csize = (-(-H // 2 ** dst_shift[0]), -(-W // 2 ** dst_shift[1]))
        out_c = [np.clip(sited_downsample(p, dst_shift, dst_sites, csize), -0.5, 0.5)
                 for p in out[1:]]  # fmt: skip
    codes = [lo + luma_range * out_y, *(mid + chroma_range * p for p in out_c)]
    return [np.clip(np.round(c), 0, 2**bits - 1) for c in codes]  # full range: Pb 1/2 -> 2^bits


def output_planes(h, w, shift, bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    ch, cw = -(-h // 2 ** shift[0]), -(-w // 2 ** shift[1])
    return np.zeros((h, w), dtype), np.zeros((ch, cw), dtype), np.zeros((ch, cw), dtype)


def run_both(color, size, src, dst, bits, full, matrix, scale=2, seed=0, sites=(False, False)):
    module = TinySR(3 if color == "rgb" else 1, scale).eval()
    up = fastsr.Upscaler(
        model=tiny_graph(3 if color == "rgb" else 1, scale, module), backend="cpu", threads=2
    )
    h, w = size
    planes = random_planes(h, w, SHIFTS[src], bits, seed)
    assert up.takes_planes(h, w)
    out = output_planes(h * scale, w * scale, SHIFTS[dst], bits)
    kr, kb = KR_KB[matrix]
    coding = dict(
        src_shift=SHIFTS[src], dst_shift=SHIFTS[dst], bits=bits, full_range=full, kr=kr, kb=kb,
        src_cosited=sites, dst_cosited=sites,
    )
    up.upscale_planes(planes, out, **coding)
    expected = reference(module, color, planes, SHIFTS[src], SHIFTS[dst], scale, bits, full, kr,
                         kb, sites, sites)  # fmt: skip
    return out, expected


def assert_within_a_level(out, expected):
    """At most one level off, on at most 0.5 % of samples (float32 against float64)."""
    for got, want in zip(out, expected, strict=True):
        assert got.shape == want.shape
        diff = np.abs(got.astype(np.int64) - want)
        assert diff.max() <= 1 and (diff > 0).mean() <= 5e-3, (diff.max(), (diff > 0).mean())


@pytest.mark.parametrize("color", ["y", "rgb"])
@pytest.mark.parametrize(
    "src,dst", [("420", "420"), ("422", "422"), ("444", "444"), ("420", "444"), ("444", "420")]
)
def test_planes_match_the_colour_maths_reference(color, src, dst):
    assert_within_a_level(*run_both(color, (20, 26), src, dst, 8, False, "bt601"))


@pytest.mark.parametrize("color", ["y", "rgb"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("bits,full", [(8, False), (8, True), (10, False), (10, True)])
def test_matrix_range_and_depth_follow_the_reference(color, matrix, bits, full):
    assert_within_a_level(*run_both(color, (18, 24), "420", "420", bits, full, matrix, seed=bits))


@pytest.mark.parametrize("color", ["y", "rgb"])
def test_odd_sizes_keep_the_last_partial_chroma_sample(color):
    # 4:2:0 of 25 x 33: chroma 13 x 17, the last row and column each cover one luma sample
    assert_within_a_level(*run_both(color, (25, 33), "420", "444", 8, False, "bt709", scale=3))


def test_bt601_luma_goes_through_unchanged_for_a_y_model():
    """A BT.601 studio-range Y plane is the model's luma: a model that gives back the
    bicubic upscale of its input gives back bicubic luma codes, whatever the chroma."""
    up = fastsr.Upscaler(model=tiny_graph(1, 2, BicubicSR()), backend="cpu", threads=1)
    planes = random_planes(16, 20, (1, 1), 8, seed=4)
    out = output_planes(32, 40, (1, 1), 8)
    up.upscale_planes(planes, out, src_shift=(1, 1), dst_shift=(1, 1), bits=8, full_range=False,
                      kr=0.299, kb=0.114)  # fmt: skip
    luma = np.clip(resample(planes[0], (2, 2), "bicubic", (32, 40)), 16, 235)
    assert np.abs(out[0] - np.round(luma)).max() <= 1
    for got, source in zip(out[1:], planes[1:], strict=True):
        chroma = np.clip(resample(source, (2, 2), "bicubic", got.shape), 16, 240)
        assert np.abs(got - np.round(chroma)).max() <= 1


class BicubicSR(torch.nn.Module):
    """x2 bicubic alone: a model that leaves flat colours exactly as they are."""

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def test_bad_planes_are_clear_errors():
    up = fastsr.Upscaler(model=tiny_graph(1, 2), backend="cpu", threads=1)
    src, dst = random_planes(8, 10, (1, 1), 8), output_planes(16, 20, (1, 1), 8)
    coding = dict(src_shift=(1, 1), dst_shift=(1, 1), bits=8, full_range=False, kr=0.299, kb=0.114)
    up.upscale_planes(src, dst, **coding)
    with pytest.raises(ValueError, match="three planes"):
        up.upscale_planes(src[:2], dst, **coding)
    with pytest.raises(ValueError, match=r"dst Cb must be 8 x 10, got shape \(16, 20\)"):
        up.upscale_planes(src, (dst[0], dst[0], dst[0]), **coding)
    with pytest.raises(TypeError, match="uint16 for 10-bit"):
        up.upscale_planes(src, dst, **{**coding, "bits": 10})
    with pytest.raises(ValueError, match="contiguous"):
        up.upscale_planes((src[0], src[1][:, ::-1], src[2]), dst, **coding)
    read_only = dst[0].copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        up.upscale_planes(src, (read_only, *dst[1:]), **coding)
    with pytest.raises(ValueError, match="shifts must be 0 or 1"):
        up.upscale_planes(src, dst, **{**coding, "dst_shift": (2, 1)})
    with pytest.raises(ValueError, match="luma weights"):
        up.upscale_planes(src, dst, **{**coding, "kr": 0.7, "kb": 0.4})
    x3 = fastsr.Upscaler(model=tiny_graph(1, 3), backend="cpu", threads=1)
    with pytest.raises(ValueError, match="no integer chroma factor"):
        x3.upscale_planes(random_planes(8, 10, (0, 0), 8), output_planes(24, 30, (1, 1), 8),
                          **{**coding, "src_shift": (0, 0)})  # fmt: skip


SITES = {"left": (False, True), "topleft": (True, True), "top": (True, False)}


@pytest.mark.parametrize("mode,shift", [("bicubic", (1, 1)), ("bicubic", (0, 1)),
                                        ("bilinear", (1, 1))])  # fmt: skip
def test_centred_sited_reference_is_torch_interpolate(mode, shift):
    """The sited reference, at centred sites, is F.interpolate: it places samples right."""
    plane = np.random.default_rng(5).random((7, 9))
    factor = (2 * 2 ** shift[0], 2 * 2 ** shift[1]) if mode == "bicubic" else (2, 2)
    size = (7 * factor[0], 9 * factor[1])
    src_shift, scale = (shift, 2) if mode == "bicubic" else ((1, 1), 1)
    dst_shift = (0, 0)
    got = sited_upscale(plane, src_shift, (False, False), dst_shift, (False, False), scale,
                        mode, size)  # fmt: skip
    np.testing.assert_allclose(got, resample(plane, factor, mode, size), atol=1e-12)


@pytest.mark.parametrize("color", ["y", "rgb"])
@pytest.mark.parametrize("sites", sorted(SITES))
@pytest.mark.parametrize("src,dst", [("420", "420"), ("422", "422"), ("420", "444"),
                                     ("444", "420")])  # fmt: skip
def test_sited_chroma_matches_the_sited_reference(color, sites, src, dst):
    assert_within_a_level(
        *run_both(color, (19, 26), src, dst, 8, False, "bt709", sites=SITES[sites])
    )


def ramp_shift(color: str, cosited: tuple[bool, bool]) -> float:
    """A left-sited 4:2:0 16-bit frame (rounding then moves nothing measurably) whose Cb
    is a horizontal ramp, 150 codes a luma column, through a x2 bicubic model with
    run_yuv told `cosited`: how far, in output chroma samples, the output's Cb ramp lies
    from where the left sites put it."""
    channels = 3 if color == "rgb" else 1
    up = fastsr.Upscaler(model=tiny_graph(channels, 2, BicubicSR()), backend="cpu", threads=1)
    h, w, slope, start = 16, 64, 150.0, 28118.0
    cb = start + slope * chroma_positions(w // 2, 1, True)
    grey = np.full((h, w), 32768, np.uint16)
    planes = (grey, np.tile(cb, (h // 2, 1)).astype(np.uint16), grey[: h // 2, : w // 2])
    out = output_planes(2 * h, 2 * w, (1, 1), 16)
    up.upscale_planes(planes, out, src_shift=(1, 1), dst_shift=(1, 1), bits=16,
                      full_range=False, kr=0.2126, kb=0.0722, src_cosited=cosited,
                      dst_cosited=cosited)  # fmt: skip
    # output chroma o lies on output luma 2 o, input luma (2 o + 1/2) / 2 - 1/2 = o - 1/4;
    # one output chroma sample spans one input luma sample
    o = np.arange(w)
    want = start + slope * (o - 0.25)
    inner = slice(6, w - 6)
    return float(np.mean(out[1][2:-2, inner] - want[inner]) / slope)


@pytest.mark.parametrize("color", ["y", "rgb"])
def test_left_sited_chroma_ramp_round_trips_without_a_shift(color):
    # Keys' cubic with a = -0.75 does not give a ramp back exactly: at the phases left
    # sites read (3/8, 7/8) it moves it by -0.012 samples on average (the y model's 0.013)
    assert abs(ramp_shift(color, (False, True))) < 0.02
    # read as centred (the planar path before siting), the ramp moves a quarter sample
    assert abs(ramp_shift(color, (False, False)) + 0.25) < 0.01


def test_run_yuv_chroma_buffers_count_in_the_program_bytes():
    from fastsr.backends import get_backend
    from fastsr.engine import make_plan

    compiled = get_backend("cpu").compile(tiny_graph(1, 2), make_plan(tiny_graph(1, 2), 1, 12, 20))
    before = compiled.nbytes
    compiled.run_yuv(random_planes(12, 20, (1, 1), 8), output_planes(24, 40, (1, 1), 8),
                     src_shift=(1, 1), dst_shift=(1, 1), bits=8, full_range=False,
                     kr=0.299, kb=0.114)  # fmt: skip
    low, width_pass = 6 * 10 * 2, 6 * 20 * 2  # Cb, Cr of 6 x 10, widened x2 (to 4:2:0 of x2)
    assert compiled.nbytes - before == 4 * (low + width_pass)
