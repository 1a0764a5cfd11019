"""CPU time of one 64 -> 64 3x3 conv (ReLU, u8 in and out) at 640x360: int8 Winograd
F(2x2, 3x3) against direct int8 at each int8 family, and fp32 at the family's SIMD level;
one process, rounds interleaved, best of N. What cpu_int8.WINOGRAD_FAMILIES is chosen by.
`python -m benchmarks.int8_winograd_conv [--rounds N] [--threads T] [--families ...]`"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.int8_families import FAMILY_SIMD
from fastsr import _C
from fastsr.quantize import quantize_weight
from fastsr.winograd_int8 import quantize_winograd_weight

H, W, C = 360, 640, 64


def conv_program(kind: str, family: str, threads: int, weight: np.ndarray):
    before = _C.simd_level()
    _C.set_simd_level(FAMILY_SIMD[family])
    _C.set_int8_isa(family)
    try:
        p = _C.Program(threads)
        x = p.view(p.add_buffer(1, H, W, C, 1), 0, C)
        out = p.view(p.add_buffer(1, H, W, C), 0, C)
        p.set_input(x), p.set_output(out)
        bias = np.zeros(C, np.float32)
        if kind == "fp32":
            p.conv2d(x, out, weight, bias, pad_top=1, pad_left=1, activation="relu")
            return p
        xq = p.byte_view(p.add_byte_buffer(1, H, W, C, 1, fill=10), 0, C)
        yq = p.byte_view(p.add_byte_buffer(1, H, W, C, 1, fill=10), 0, C)
        args = dict(x_scale=0.01, x_zero=10, out_q=yq, out_scale=0.01, out_zero=10,
                    activation="relu")
        if kind == "direct":
            p.conv2d_int8(xq, *quantize_weight(weight), bias, pad_top=1, pad_left=1, **args)
        else:
            taps = np.full(16, 2.0, np.float32)
            p.conv2d_int8_winograd(xq, *quantize_winograd_weight(weight), taps, bias, **args)
        return p
    finally:
        _C.set_int8_isa(None)
        _C.set_simd_level(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--families", nargs="+", default=_C.supported_int8_isas())
    args = parser.parse_args()
    weight = (np.random.default_rng(0).standard_normal((C, C, 3, 3)) * 0.05).astype(np.float32)
    programs = {}
    for family in args.families:
        for kind in ("fp32", "direct", "winograd"):
            programs[kind, family] = conv_program(kind, family, args.threads, weight)
    best = dict.fromkeys(programs, np.inf)
    for _ in range(args.rounds):
        for key, program in programs.items():
            start = time.process_time()
            program.run_steps()
            best[key] = min(best[key], time.process_time() - start)
    for family in args.families:
        fp32, direct, wino = (best[k, family] for k in ("fp32", "direct", "winograd"))
        print(f"{family}: fp32 {fp32 * 1e3:.1f} ms, int8 direct {direct * 1e3:.1f} ms, "
              f"int8 Winograd {wino * 1e3:.1f} ms ({direct / wino:.2f}x direct, "
              f"{fp32 / wino:.2f}x fp32)")


if __name__ == "__main__":
    main()
