"""CPU time per 640x360 frame of the shipped int8 models, AMX vs AVX-512 VNNI kernels, in
one process, 1 thread, rounds interleaved so load drifts hit both alike, outputs checked
identical. `python -m benchmarks.amx_int8 [--rounds N]`."""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from benchmarks.bench_int8 import natural_frame
from fastsr import _C
from fastsr.engine import Engine
from fastsr.graph import load


def compiled_program(model: str, amx: bool, height: int, width: int):
    _C.set_int8_isa("amx" if amx else "avx512vnni")
    try:
        graph = load(model)
        engine = Engine(graph, "cpu", "int8", threads=1)
        x = natural_frame(height, width, graph.input_channels)
        y = engine.run(x)
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
    parser.add_argument("--models", nargs="+", default=["fast_x2", "quality_x2"])
    args = parser.parse_args()
    _C.set_simd_level("avx512")
    height, width = 360, 640
    print(f"{platform.processor() or platform.machine()}, int8 kernels {_C.int8_isa()}, 1 thread")
    for model in args.models:
        runs = {}
        for amx in (False, True):
            runs[amx] = compiled_program(model, amx, height, width)
        assert np.array_equal(runs[False][1], runs[True][1]), f"{model}: AMX output differs"
        times = {False: [], True: []}
        for _ in range(args.rounds):
            for amx in (False, True):
                times[amx].append(cpu_seconds(runs[amx][0]))
        vnni, amx = min(times[False]), min(times[True])
        print(
            f"{model} {width}x{height}: avx512vnni {vnni * 1e3:.0f} ms, amx {amx * 1e3:.0f} ms "
            f"CPU per frame (best of {args.rounds}); amx / vnni time {amx / vnni:.2f}; "
            f"outputs identical"
        )


if __name__ == "__main__":
    main()
