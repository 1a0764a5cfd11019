"""CPU time per 640x360 frame of the shipped models at fp32 and at int8 on each int8 kernel
family (`_C.set_int8_isa`), in one process, rounds interleaved so load drifts hit every
variant alike, best of N; the families' outputs checked identical.
`[FASTSR_SIMD=LEVEL] python -m benchmarks.int8_families [--rounds N] [--threads T]
[--models ...] [--families amx avx512vnni ...]` (default: every family this CPU has)."""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from benchmarks.bench_int8 import natural_frame
from fastsr import _C
from fastsr.engine import Engine
from fastsr.graph import load


def compiled_program(model: str, precision: str, family: str | None, threads: int,
                     height: int, width: int):
    _C.set_int8_isa(family)
    try:
        graph = load(model)
        engine = Engine(graph, "cpu", precision, threads=threads)
        y = engine.run(natural_frame(height, width, graph.input_channels))
        return engine.compiled(1, height, width).program, y
    finally:
        _C.set_int8_isa(None)


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
    print(f"{platform.processor() or platform.machine()}, {_C.simd_level()} SIMD, "
          f"{args.threads} thread(s), CPU time, best of {args.rounds}")
    for model in args.models:
        variants = {"fp32": compiled_program(model, "fp32", None, args.threads, height, width)}
        for family in args.families:
            variants[f"int8 {family}"] = compiled_program(model, "int8", family, args.threads,
                                                          height, width)
        outputs = [y for label, (_, y) in variants.items() if label != "fp32"]
        assert all(np.array_equal(outputs[0], y) for y in outputs), f"{model}: families differ"
        times = {label: [] for label in variants}
        for _ in range(args.rounds):
            for label, (program, _) in variants.items():
                times[label].append(cpu_seconds(program))
        fp32 = min(times["fp32"])
        rows = [f"{label} {min(t) * 1e3:.0f} ms ({fp32 / min(t):.2f}x fp32)"
                for label, t in times.items()]
        print(f"{model} {width}x{height}: {', '.join(rows)}; int8 outputs identical")


if __name__ == "__main__":
    main()
