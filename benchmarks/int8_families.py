"""CPU time per 640x360 frame of the shipped models at int8 on each int8 kernel family
(`_C.set_int8_isa`) against fp32 at the SIMD level a CPU with that family runs (AVX2 for
AVX-VNNI and AVX2: Alder Lake and Zen 3 have no AVX-512), the whole program at that level;
one process, rounds interleaved so load drifts hit every variant alike, best of N. A family
that runs int8 Winograd (cpu_int8.WINOGRAD_FAMILIES) is timed with its convs direct too;
the outputs of each algorithm are checked identical across families whose fp32 layers agree.
`python -m benchmarks.int8_families [--rounds N] [--threads T] [--models ...]
[--families amx avx512vnni ...]` (default: every family this CPU has)."""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from benchmarks.bench_int8 import natural_frame
from fastsr import _C
from fastsr.backends.cpu_int8 import WINOGRAD_FAMILIES
from fastsr.engine import Engine
from fastsr.graph import load

# The SIMD level of the CPUs that have each int8 family.
FAMILY_SIMD = {"amx": "avx512", "avx512vnni": "avx512", "avxvnni": "avx2", "avx2": "avx2",
               "neon-dotprod": "neon", "neon": "neon", "portable": "portable"}  # fmt: skip


def compiled_program(
    model: str,
    precision: str,
    family: str | None,
    level: str,
    threads: int,
    height: int,
    width: int,
    winograd: bool = True,
):
    before = _C.simd_level()
    _C.set_simd_level(level)
    _C.set_int8_isa(family)
    try:
        graph = load(model)
        if not winograd:
            graph.meta["int8"].pop("winograd", None)
        engine = Engine(graph, "cpu", precision, threads=threads)
        y = engine.run(natural_frame(height, width, graph.input_channels))
        return engine.compiled(1, height, width).program, y
    finally:
        _C.set_int8_isa(None)
        _C.set_simd_level(before)


def cpu_seconds(program) -> float:
    start = time.process_time()
    program.run_steps()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=["fast_x2", "quality_x2"])
    parser.add_argument("--families", nargs="+", default=_C.supported_int8_isas())
    args = parser.parse_args()
    height, width = 360, 640
    print(
        f"{platform.processor() or platform.machine()}, {_C.simd_level()} SIMD, "
        f"{args.threads} thread(s), CPU time, best of {args.rounds}"
    )
    levels = sorted({FAMILY_SIMD[f] for f in args.families}, key=_C.supported_simd_levels().index)
    for model in args.models:
        variants = {
            f"fp32 {level}": compiled_program(
                model, "fp32", None, level, args.threads, height, width
            )
            for level in levels
        }
        direct = [f"int8 {f}" for f in args.families if f not in WINOGRAD_FAMILIES]
        winograd = []
        for family in args.families:
            variants[f"int8 {family}"] = compiled_program(
                model, "int8", family, FAMILY_SIMD[family], args.threads, height, width
            )
            if family in WINOGRAD_FAMILIES:
                winograd.append(f"int8 {family}")
                direct.append(f"int8 direct {family}")
                variants[direct[-1]] = compiled_program(
                    model, "int8", family, FAMILY_SIMD[family], args.threads, height, width, False
                )
        # The fp32 layers around the int8 ones may round differently at another SIMD level
        # (the portable kernels sum in another order), which moves a few requantised values:
        # int8 outputs must agree wherever the fp32 layers do.
        fp32_alike = {}
        for level in levels:
            fp32_alike.setdefault(variants[f"fp32 {level}"][1].tobytes(), []).append(level)
        for group in (direct, winograd):
            for alike in fp32_alike.values():
                same = [label for label in group if FAMILY_SIMD[label.split()[-1]] in alike]
                outputs = [variants[label][1] for label in same]
                assert all(np.array_equal(outputs[0], y) for y in outputs), (
                    f"{model}: {same} differ"
                )
        times = {label: [] for label in variants}
        for _ in range(args.rounds):
            for label, (program, _) in variants.items():
                times[label].append(cpu_seconds(program))
        rows = [f"fp32 {level} {min(times[f'fp32 {level}']) * 1e3:.0f} ms" for level in levels]
        for label in variants:
            if label.startswith("int8"):
                family = label.split()[-1]
                fp32 = min(times[f"fp32 {FAMILY_SIMD[family]}"])
                best = min(times[label])
                rows.append(f"{label} {best * 1e3:.0f} ms ({fp32 / best:.2f}x fp32 "
                            f"{FAMILY_SIMD[family]})")  # fmt: skip
        note = "int8 outputs identical per algorithm where fp32 agrees"
        print(f"{model} {width}x{height}: {', '.join(rows)}; {note}")


if __name__ == "__main__":
    main()
