"""The C++ kernel layer built as a stand-alone binary (tests/cpp/kernel_check.cpp) and
checked against torch: natively at every x86 SIMD level this CPU has, and cross-built for
AArch64 and run under qemu-aarch64 at the NEON and portable levels, so the NEON kernels
are proven on machines without ARM hardware.

Covers odd sizes, every kernel size the zoo uses (1, 3, 5, 6, 9), stride, dilation, every
conv epilogue (activations, pixel shuffle, skip), Winograd, the pointwise and resize steps,
the int8 conv bit for bit against the numpy integer reference of test_int8_kernels.py, and
the bf16 conv within the rounding bound of its dot product (Bf16Conv). qemu runs the NEON
level three times: as `-cpu max` (FEAT_DotProd and FEAT_BF16: the sdot and bfdot kernels),
as a Neoverse N1 (dot products, no bf16: the bf16 steps must be refused) and as a
Cortex-A57 (ARMv8.0: the smull kernel, no bf16), and each run checks which int8 and bf16
kernel families the binary chose from HWCAP / HWCAP2.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from itertools import product

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kernel_check_build import Target, build
from simd_levels import cpu_flags
from test_bf16_kernels import reference as bf16_reference
from test_int8_kernels import (
    REQUANTISED_ACTS,
    conv_int8_ref,
    int_sums_ref,
    pixel_shuffle_ref,
    quantize_ref,
    random_case,
    requantize_ref,
)
from test_int8_winograd import random_case as winograd_case
from test_int8_winograd import winograd_int8_ref

SIMD = {"portable": 0, "avx2": 1, "avx512": 2, "neon": 3}
ACT = {"none": 0, "relu": 1, "prelu": 2, "leaky_relu": 3, "tanh": 4, "sigmoid": 5, "silu": 6}
POINTWISE = {"relu": 0, "prelu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "clamp": 5}
RESIZE = {"nearest": 0, "bilinear": 1, "bicubic": 2}
ALGORITHM = {"auto": 0, "direct": 1, "winograd": 2}
INT8_ACTS = ("none", "relu", "prelu", "leaky_relu")
INT8_ISA = ["portable", "avx2", "avxvnni", "avx512vnni", "neon", "neon-dotprod", "amx"]  # Int8Isa
BF16_ISA = ["avx512bf16", "neon-bf16", "amx", "none"]  # Bf16Isa

NATIVE = Target("native", ("g++",), platform.machine())
QEMU_RUNNER = ("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu")
QEMU = Target("aarch64-qemu", ("aarch64-linux-gnu-g++",), "aarch64", QEMU_RUNNER)
# clang (macOS's compiler is Apple clang) on GCC's cross sysroot and libstdc++.
QEMU_CLANG = Target(
    "aarch64-qemu-clang",
    ("clang++-19", "--target=aarch64-linux-gnu"),
    "aarch64",
    QEMU_RUNNER,
    "clang",
    "apt-get install clang-19 g++-aarch64-linux-gnu qemu-user",
)


def _native_levels() -> list[str]:
    from fastsr import _C

    return _C.supported_simd_levels()


def _native_int8_isa(level: str) -> str:
    """The int8 kernel family a level must pick on this CPU, from /proc/cpuinfo."""
    flags = cpu_flags()
    if level == "neon":
        return "neon-dotprod" if "asimddp" in flags else "neon"
    if level == "portable":
        return "portable"
    if level == "avx512" and {"avx512_vnni", "amx_tile", "amx_int8"} <= flags:
        return "amx"
    if level == "avx512" and "avx512_vnni" in flags:
        return "avx512vnni"
    return "avxvnni" if "avx_vnni" in flags else "avx2"


def _native_bf16_isa(level: str) -> str:
    """The bf16 kernel family a level must pick on this CPU, from /proc/cpuinfo."""
    flags = cpu_flags()
    if level == "avx512" and {"avx512_bf16", "amx_tile", "amx_bf16"} <= flags:
        return "amx"
    if level == "avx512" and "avx512_bf16" in flags:
        return "avx512bf16"
    if level == "neon" and "bf16" in flags:
        return "neon-bf16"
    return "none"


@dataclass(frozen=True)
class Run:
    target: Target
    simd: str
    int8_isa: str  # the int8 kernel family this run must choose
    bf16_isa: str  # and the bf16 one
    cpu: str | None = None  # qemu's -cpu model

    def id(self):
        return "-".join([self.target.name, *([self.cpu] if self.cpu else []), self.simd])

    def command(self, binary):
        return [*self.target.runner, *(["-cpu", self.cpu] if self.cpu else []), str(binary)]


RUNS = [
    Run(QEMU, "neon", "neon-dotprod", "neon-bf16", "max"),
    Run(QEMU, "neon", "neon-dotprod", "none", "neoverse-n1"),  # Graviton2: no FEAT_BF16
    Run(QEMU, "neon", "neon", "none", "cortex-a57"),  # ARMv8.0: no dot product
    Run(QEMU, "portable", "portable", "none", "max"),
    Run(QEMU_CLANG, "neon", "neon-dotprod", "neon-bf16", "max"),
    Run(QEMU_CLANG, "neon", "neon", "none", "cortex-a57"),
] + [
    Run(NATIVE, level, _native_int8_isa(level), _native_bf16_isa(level))
    for level in _native_levels()
]


def rng(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous().numpy()


def _ints(*values):
    return np.array(values, np.int32).tobytes()


def _floats(*arrays):
    return b"".join(np.ascontiguousarray(a, np.float32).tobytes() for a in arrays)


class Case:
    """What the harness asks of every case besides its bytes (`encode`)."""

    def runs(self, run: Run) -> bool:
        """Whether `run` computes this case; where not, the binary must answer nothing."""
        return True

    def reference(self):
        """(expected, tolerance): the answer, and the error allowed (scalar or elementwise)."""
        expected = self.expected()
        return expected, self.tolerance(expected)


class Conv(Case):
    """One conv case: the bytes the binary reads and the torch result it must give."""

    def __init__(
        self,
        n,
        h,
        w,
        cin,
        cout,
        k,
        stride=1,
        dilation=1,
        act="none",
        shuffle=1,
        skip=False,
        algorithm="direct",
        gate="none",
        seed=0,
    ):
        self.pad = (dilation * (k - 1) - stride + 1) // 2 if stride > 1 else dilation * (k // 2)
        self.n, self.h, self.w, self.cin, self.k = n, h, w, cin, k
        self.stride, self.dilation, self.act, self.shuffle = stride, dilation, act, shuffle
        self.skip, self.algorithm, self.gate = skip, algorithm, gate
        self.gate_scale, self.gate_shift = (1.0, -0.5) if gate == "sigmoid" else (0.75, 0.25)
        self.conv_out = cout * shuffle**2
        self.x = rng((n, h, w, cin), seed)
        self.weight = rng((self.conv_out, cin, k, k), seed + 1, 1 / np.sqrt(k * k * cin))
        self.bias = rng((self.conv_out,), seed + 2, 0.5)
        self.slope = rng((self.conv_out,), seed + 3, 0.3)
        self.alpha = 0.1
        oh = (h + 2 * self.pad - dilation * (k - 1) - 1) // stride + 1
        ow = (w + 2 * self.pad - dilation * (k - 1) - 1) // stride + 1
        self.skip_values = rng((n, oh * shuffle, ow * shuffle, cout), seed + 4) if skip else None

    def id(self):
        return (
            f"conv{self.k}x{self.k}-{self.cin}to{self.conv_out}-{self.h}x{self.w}"
            f"-s{self.stride}d{self.dilation}-{self.act}-r{self.shuffle}"
            f"{'-skip' if self.skip else ''}-{self.algorithm}"
            f"{'' if self.gate == 'none' else '-gate-' + self.gate}"
        )

    def fields(self):
        """The header fields conv2d and int8 conv2d share (kernel_check.cpp)."""
        shape = [self.n, self.h, self.w, self.cin, self.conv_out, self.k, self.k]
        geometry = [self.stride, self.dilation, self.pad, self.pad]  # the last: border
        return [*shape, *geometry, ACT[self.act], self.shuffle, int(self.skip)]

    def encode(self, simd):
        header = _ints(0, SIMD[simd], *self.fields(), ALGORITHM[self.algorithm], ACT[self.gate])
        floats = [self.alpha, self.gate_scale, self.gate_shift]
        arrays = [floats, self.x, self.weight, self.bias, self.slope]
        return header + _floats(*arrays, *([self.skip_values] if self.skip else []))

    def expected(self):
        x = nchw(self.x)
        y = F.conv2d(
            x,
            torch.from_numpy(self.weight),
            torch.from_numpy(self.bias),
            self.stride,
            self.pad,
            self.dilation,
        )
        y = {
            "none": lambda t: t,
            "relu": torch.relu,
            "prelu": lambda t: F.prelu(t, torch.from_numpy(self.slope)),
            "leaky_relu": lambda t: F.leaky_relu(t, self.alpha),
            "tanh": torch.tanh,
            "sigmoid": torch.sigmoid,
            "silu": F.silu,
        }[self.act](y)
        y = nhwc(F.pixel_shuffle(y, self.shuffle))
        if self.gate != "none":  # the gated skip of SPAN's blocks
            gate = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}[self.gate](torch.from_numpy(y))
            return (y + self.skip_values) * (self.gate_scale * gate.numpy() + self.gate_shift)
        return y + self.skip_values if self.skip else y

    def tolerance(self, expected):
        # Winograd rounds differently from the direct sum: bound the error relative to size.
        scale = 1e-5 if self.algorithm == "winograd" else 2e-6
        return scale * max(1.0, float(np.abs(expected).max()))


class Int8Conv(Conv):
    """One int8 conv case (fp32 input quantised by the Program): Conv's geometry and skip,
    test_int8_kernels' random integer weights; bit exact. `both`: the conv stores fp32 and
    u8 in one pass, answered side by side along channels."""

    def __init__(self, *shape, out_u8=False, both=False, x_zero=131, seed=0, **options):
        super().__init__(*shape, seed=seed, **options)
        self.out_u8, self.both, self.x_zero = out_u8 or both, both, x_zero
        self.x, self.wq, self.w_scale, self.bias, self.slope = random_case(
            seed, self.n, self.h, self.w, self.cin, self.conv_out, self.k
        )
        self.x_scale, self.out_scale, self.out_zero = 0.02, 0.05, 100

    def id(self):
        out = "-both" if self.both else "-u8" if self.out_u8 else ""
        return f"int8-{super().id()}-z{self.x_zero}{out}"

    def encode(self, simd):
        outputs = 2 if self.both else int(self.out_u8)
        header = _ints(3, SIMD[simd], *self.fields(), outputs, self.x_zero, self.out_zero)
        scalars = [self.alpha, self.x_scale, self.out_scale]
        arrays = [scalars, self.x, self.wq, self.w_scale, self.bias, self.slope]
        return header + _floats(*arrays, *([self.skip_values] if self.skip else []))

    def expected(self):
        q = quantize_ref(self.x, self.x_scale, self.x_zero)
        y = conv_int8_ref(
            q,
            self.x_zero,
            self.wq,
            self.x_scale,
            self.w_scale,
            self.bias,
            self.stride,
            self.pad,
            self.dilation,
            self.act,
            self.slope,
            self.alpha,
        )
        y = pixel_shuffle_ref(y, self.shuffle)
        if self.skip:
            y = y + self.skip_values
        if not self.out_u8:
            return y
        if not self.both and not self.skip and self.act in REQUANTISED_ACTS:
            acc = int_sums_ref(q, self.x_zero, self.wq, self.stride, self.pad, self.dilation)
            codes = requantize_ref(acc, self.x_scale, self.w_scale, self.bias, self.out_scale,
                                   self.out_zero, self.act)  # fmt: skip
            codes = pixel_shuffle_ref(codes, self.shuffle)
        else:
            codes = quantize_ref(y, self.out_scale, self.out_zero)
        zero = np.float32(self.out_zero)
        q = (codes.astype(np.float32) - zero) * np.float32(self.out_scale)
        return np.concatenate([y, q], axis=3) if self.both else q

    def tolerance(self, expected):
        return 0.0


class Bf16Conv(Conv):
    """One bf16 conv case (fp32 input rounded to bf16 by the Program): Conv's geometry and
    data, against torch float64 on the bf16-rounded operands (test_bf16_kernels.reference),
    within a bound that holds for both bf16 dot products:

    - vdpbf16ps (x86) adds each product into its fp32 lane rounding to nearest even: terms +
      2 roundings of unit U = 2^-24 (test_bf16_kernels).
    - BFDOT (Arm ARM, FEAT_BF16 with FPCR.EBF 0, as Linux starts every thread) computes a
      pair's two products exactly (8 x 8 significant bits fit fp32), then rounds their sum,
      and its accumulation, to odd: an error below one ulp, 2U relative, twice nearest-even's.
      A product passes at most pairs + 1 of them (pairs = ceil(cin / 2) kh kw, the odd
      channel paired with +0) and the bias add rounds once more: 2 (pairs + 1) + 1 roundings
      of U, at least terms + 3.
    - Both flush denormal inputs, products and sums to zero: below 2^-126 each, terms 2^-125
      in all (random cases have none; the term keeps the bound true).

    A bf16 output adds half a bf16 step, 2^-8 |y|. A product dropped or read from the wrong
    tap or channel costs ~ sum |x w| / terms, far above the bound."""

    def __init__(self, *shape, out_bf16=False, both=False, seed=0, **options):
        super().__init__(*shape, seed=seed, **options)
        self.out_bf16, self.both = out_bf16 or both, both

    def id(self):
        out = "-both" if self.both else "-bf16out" if self.out_bf16 else ""
        return f"bf16-{super().id()}{out}"

    def runs(self, run):
        return run.bf16_isa != "none"

    def encode(self, simd):
        header = _ints(5, SIMD[simd], *self.fields(), 2 if self.both else int(self.out_bf16))
        arrays = [[self.alpha], self.x, self.weight, self.bias, self.slope]
        return header + _floats(*arrays, *([self.skip_values] if self.skip else []))

    def reference(self):
        terms = self.cin * self.k * self.k
        pairs = (self.cin + 1) // 2 * self.k * self.k
        y, bound = bf16_reference(
            self.x, self.weight, self.bias, self.stride, self.pad, self.dilation, self.act,
            self.slope, self.alpha, self.shuffle, self.skip_values, roundings=2 * (pairs + 1) + 1,
        )  # fmt: skip
        bound = bound + terms * 2.0**-125
        if not self.out_bf16:
            return y, bound
        rounded = bound * (1 + 2.0**-8) + 2.0**-8 * np.abs(y)
        if self.both:
            return np.concatenate([y, y], axis=3), np.concatenate([bound, rounded], axis=3)
        return y, rounded


class Int8Winograd(Case):
    """One int8 Winograd F(2x2, 3x3) conv to fp32 against test_int8_winograd's numpy float32
    reference of the same algorithm: its u8 taps (the fixed-point rule) must match bit for
    bit, or an output moves by a tap's step, far past the float sums' 1e-5 of the largest.
    `tap_factor` scales the taps' scales (below 1 the requantiser shifts)."""

    def __init__(self, n, h, w, cin, cout, act="none", x_zero=128, tap_factor=1.0, seed=0):
        self.shape, self.act, self.x_zero = (n, h, w, cin, cout), act, x_zero
        self.alpha, self.x_scale = 0.1, 0.03
        self.x, self.wq, self.w_scale, tap_scale, self.bias, self.slope, _ = winograd_case(
            seed, n, h, w, cin, cout
        )
        self.tap_scale = (tap_scale * tap_factor).astype(np.float32)

    def id(self):
        n, h, w, cin, cout = self.shape
        return f"int8-winograd-{cin}to{cout}-{h}x{w}-{self.act}-z{self.x_zero}"

    def encode(self, simd):
        header = _ints(8, SIMD[simd], *self.shape, ACT[self.act], self.x_zero)
        arrays = [self.x, self.wq, self.w_scale, self.tap_scale, self.bias, self.slope]
        return header + _floats([self.alpha, self.x_scale], *arrays)

    def expected(self):
        q = quantize_ref(self.x, self.x_scale, self.x_zero)
        return winograd_int8_ref(q, self.x_zero, self.x_scale, self.wq, self.w_scale,
                                 self.tap_scale, self.bias, self.act, self.slope, self.alpha)

    def tolerance(self, expected):
        return 1e-5 * float(np.abs(expected).max())


class Bf16RoundTrip(Case):
    """fp32 -> bf16 -> fp32 through the Program's steps: exactly torch's rounding (nearest,
    ties to even), with ties, a carry into the exponent and an overflow to infinity. No
    denormals: vcvtneps2bf16 flushes them to zero, bfcvtn (FPCR.FZ 0) and torch keep them."""

    def __init__(self, seed=70):
        bits = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0xBF808001, 0x3F7FFFFF, 0x7F7FFFFF, 0])
        x = np.concatenate([bits.astype(np.uint32).view(np.float32), rng((98,), seed, 1e3)])
        self.x = x.reshape(1, 3, 5, 7)

    def id(self):
        return "bf16-round-trip"

    def runs(self, run):
        return run.bf16_isa != "none"

    def encode(self, simd):
        return _ints(7, SIMD[simd], *self.x.shape) + _floats(self.x)

    def expected(self):
        return torch.from_numpy(self.x).to(torch.bfloat16).float().numpy()

    def tolerance(self, expected):
        return 0.0


class Pointwise(Case):
    def __init__(self, kind, shape=(1, 7, 5, 13), seed=40):
        self.kind, self.x = kind, rng(shape, seed, 4.0)
        self.slope = rng((shape[3],), seed + 1, 0.3)

    def id(self):
        return f"pointwise-{self.kind}"

    def encode(self, simd):
        n, h, w, c = self.x.shape
        return _ints(1, SIMD[simd], n, h, w, c, POINTWISE[self.kind]) + _floats(
            [0.1, -0.5, 0.75], self.slope, self.x
        )

    def expected(self):
        t = torch.from_numpy(self.x).double()
        return {
            "relu": torch.relu,
            "prelu": lambda v: torch.where(v > 0, v, v * torch.from_numpy(self.slope).double()),
            "leaky_relu": lambda v: F.leaky_relu(v, 0.1),
            "tanh": torch.tanh,
            "sigmoid": torch.sigmoid,
            "clamp": lambda v: v.clamp(-0.5, 0.75),
        }[self.kind](t).numpy()

    def tolerance(self, expected):
        return 2e-7 * max(1.0, float(np.abs(expected).max()))


class Resize(Case):
    def __init__(self, mode, factor, seed=50):
        self.mode, self.factor, self.x = mode, factor, rng((2, 5, 9, 3), seed)

    def id(self):
        return f"resize-{self.mode}-x{self.factor}"

    def encode(self, simd):
        n, h, w, c = self.x.shape
        return _ints(2, SIMD[simd], n, h, w, c, RESIZE[self.mode], self.factor) + _floats(self.x)

    def expected(self):
        align = None if self.mode == "nearest" else False
        y = F.interpolate(
            nchw(self.x), scale_factor=self.factor, mode=self.mode, align_corners=align
        )
        return nhwc(y)

    def tolerance(self, expected):
        return 1e-5


CASES = [
    # every kernel size of the zoo, odd sizes and channel counts (partial vectors, remainder tiles)
    Conv(2, 9, 29, 64, 64, 3, seed=1),
    Conv(1, 7, 13, 3, 64, 3, seed=2),  # first RGB layer
    Conv(1, 6, 11, 1, 56, 5, seed=3),  # FSRCNN feature layer
    Conv(1, 5, 17, 12, 12, 3, seed=4),
    Conv(1, 4, 7, 32, 48, 3, seed=5),
    Conv(1, 9, 10, 8, 5, 3, dilation=2, seed=6),
    Conv(1, 11, 12, 3, 4, 9, seed=7),  # 9x9
    Conv(1, 12, 14, 8, 20, 6, stride=2, seed=8),  # back-projection down conv
    Conv(1, 3, 5, 16, 24, 1, seed=9),  # 1x1
    Conv(1, 5, 7, 7, 3, 1, seed=10),
    # each epilogue, with and without pixel shuffle and skip
    *[
        Conv(1, 6, 9, 16, 12, 3, act=a, shuffle=r, skip=True, seed=20 + i)
        for i, a in enumerate(ACT)
        for r in (1, 2)
    ],
    Conv(1, 5, 6, 8, 3, 3, act="relu", shuffle=3, seed=35),
    # Winograd F(4x4, 3x3): odd sizes, borders, epilogues
    Conv(1, 37, 53, 64, 64, 3, act="prelu", skip=True, algorithm="winograd", seed=60),
    Conv(2, 5, 6, 32, 48, 3, act="tanh", skip=True, algorithm="winograd", seed=61),
    Conv(1, 9, 11, 32, 32, 3, act="sigmoid", algorithm="winograd", seed=62),
    Conv(1, 8, 8, 64, 32, 3, act="relu", algorithm="winograd", seed=63),
    # the gated skip (SPAN's block tail), direct with a partial vector and Winograd
    Conv(1, 6, 9, 16, 12, 3, skip=True, gate="sigmoid", seed=64),
    Conv(1, 5, 7, 12, 20, 1, act="silu", skip=True, gate="tanh", seed=65),
    Conv(1, 9, 11, 32, 32, 3, act="silu", skip=True, gate="sigmoid", algorithm="winograd", seed=66),
    *[Pointwise(kind) for kind in POINTWISE],
    *[Resize(mode, factor) for mode in RESIZE for factor in (2, 3)],
    # int8: 64 channels (whole 16-byte loads of 4 quads), 17 (4 quads and a single one), 1,
    # 3, 8 and 10 (single quads only); every vector count; kernel sizes 1, 3, 5; zero points
    Int8Conv(2, 9, 29, 64, 64, 3, seed=101),
    Int8Conv(1, 7, 13, 3, 64, 3, x_zero=0, seed=102),  # first RGB layer
    Int8Conv(1, 6, 11, 1, 56, 5, x_zero=255, seed=103),  # FSRCNN feature layer
    Int8Conv(1, 5, 17, 17, 24, 3, x_zero=128, seed=104),
    Int8Conv(1, 11, 6, 32, 33, 3, stride=2, seed=105),
    Int8Conv(1, 12, 14, 20, 12, 5, stride=2, seed=106),
    Int8Conv(1, 9, 10, 8, 16, 3, dilation=2, seed=107),
    Int8Conv(1, 3, 5, 16, 24, 1, seed=108),
    Int8Conv(1, 5, 7, 10, 5, 1, seed=109),
    # each int8 epilogue, fp32 and u8 out, with and without pixel shuffle and skip
    *[
        Int8Conv(1, 6, 9, 16, 12 // r, 3, act=a, shuffle=r, skip=u8 == (r == 2), out_u8=u8, seed=s)
        for s, (a, r, u8) in enumerate(product(INT8_ACTS, (1, 2), (False, True)), 120)
    ],
    Int8Conv(1, 5, 6, 12, 3, 3, act="relu", shuffle=3, skip=True, out_u8=True, seed=140),
    # fp32 and u8 from one conv: dense, and pixel-shuffled with a skip
    Int8Conv(1, 5, 9, 17, 20, 3, act="prelu", both=True, seed=141),
    Int8Conv(1, 5, 6, 12, 12, 3, act="relu", shuffle=2, skip=True, both=True, seed=142),
    # int8 Winograd: odd sizes (partial tiles), 48 channels (AVX-512's half int16 vector)
    Int8Winograd(1, 7, 11, 48, 64, act="prelu", x_zero=121, seed=150),
    Int8Winograd(1, 6, 5, 32, 32, act="relu", tap_factor=0.25, seed=151),
    # bf16: 64 channels (whole 16-byte loads of 4 pairs), 17 (2 loads and the odd channel),
    # 12 (a load and 2 single pairs), 10, 3 and 1 (single pairs, the odd channel alone);
    # every vector count; kernel sizes 1, 3, 5; stride 2, dilation 2
    Bf16Conv(2, 9, 29, 64, 64, 3, seed=201),
    Bf16Conv(1, 7, 13, 3, 64, 3, seed=202),  # first RGB layer
    Bf16Conv(1, 6, 11, 1, 56, 5, seed=203),  # FSRCNN feature layer
    Bf16Conv(1, 5, 17, 17, 24, 3, seed=204),
    Bf16Conv(1, 11, 6, 12, 33, 3, stride=2, seed=205),
    Bf16Conv(1, 9, 10, 10, 16, 3, dilation=2, seed=206),
    Bf16Conv(1, 3, 5, 16, 24, 1, seed=207),
    Bf16Conv(1, 4, 7, 32, 48, 3, out_bf16=True, seed=208),
    # each epilogue, fp32 and bf16 out, with and without pixel shuffle and skip
    *[
        Bf16Conv(1, 6, 9, 16, 12 // r, 3, act=a, shuffle=r, skip=o == (r == 2), out_bf16=o, seed=s)
        for s, (a, r, o) in enumerate(product(ACT, (1, 2), (False, True)), 220)
    ],
    Bf16Conv(1, 5, 6, 12, 3, 3, act="relu", shuffle=3, skip=True, out_bf16=True, seed=250),
    # fp32 and bf16 from one conv: dense, and pixel-shuffled with a skip
    Bf16Conv(1, 5, 9, 17, 20, 3, act="prelu", both=True, seed=251),
    Bf16Conv(1, 5, 6, 12, 12, 3, act="relu", shuffle=2, skip=True, both=True, seed=252),
    Bf16RoundTrip(),
]


@pytest.fixture(scope="module")
def binaries():
    return {}


@pytest.mark.parametrize("run", RUNS, ids=[r.id() for r in RUNS])
def test_kernel_binary_matches_torch(binaries, run):
    target, simd = run.target, run.simd
    why = target.missing()
    if why is not None:
        message = f"cannot build the {target.name} kernel binary: {why}"
        # CI sets these after installing the cross tools (and clang): a skip would hide a gap.
        require = (
            "FASTSR_REQUIRE_CLANG_ARM_TEST"
            if target.family == "clang"
            else "FASTSR_REQUIRE_ARM_TEST"
        )
        if os.environ.get(require):
            pytest.fail(message)
        pytest.skip(message)
    if target.name not in binaries:
        binaries[target.name] = build(target)
    stream = b"".join(case.encode(simd) for case in CASES) + _ints(4, SIMD[simd], 6, SIMD[simd])
    done = subprocess.run(
        run.command(binaries[target.name]), input=stream, capture_output=True, timeout=600
    )
    assert done.returncode == 0, done.stderr.decode()
    answers, offset = done.stdout, 0
    failures = []
    for case in CASES:
        count = int(np.frombuffer(answers, np.int32, 1, offset)[0])
        got = np.frombuffer(answers, np.float32, count, offset + 4)
        offset += 4 + 4 * count
        expected, tolerance = case.reference() if case.runs(run) else (np.empty(0), 0.0)
        if got.size != expected.size:
            failures.append(f"{case.id()}: {got.size} values, expected {expected.size}")
            continue
        got = got.reshape(expected.shape)
        with np.errstate(invalid="ignore"):  # inf - inf, where both are infinite
            error = np.abs(got - expected)
        if not np.all((got == expected) | (error <= tolerance)):  # == for infinities
            excess = float(np.nanmax(error - tolerance))
            failures.append(f"{case.id()}: max error {np.nanmax(error):.3g}, {excess:.3g} over")
    # and last the int8 and bf16 families: a count of 1 and the index, each
    assert offset + 16 == len(answers)
    families = np.frombuffer(answers, np.float32, 3, offset + 4)[::2].astype(int)
    chosen = (INT8_ISA[families[0]], BF16_ISA[families[1]])
    assert chosen == (run.int8_isa, run.bf16_isa), f"{run.id()} chose the {chosen} kernels"
    assert not failures, f"{target.name} {simd}: " + "; ".join(failures)
