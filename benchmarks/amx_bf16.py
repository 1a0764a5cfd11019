"""CPU time of the shipped models at 640x360 at fp32, bf16 on the AVX512_BF16 and AMX
kernels and int8 on AMX, and of each of their conv shapes alone (fp32 as the backend runs
it, Winograd where it fits, against bf16 on each family), in one process, 1 thread, rounds
interleaved so load drifts hit every variant alike; best of N.
`python -m benchmarks.amx_bf16 [--rounds N] [--models ...] [--layers]`."""

from __future__ import annotations

import argparse
import platform

from benchmarks.bench_int8 import FLOOR_DB, MODELS, natural_frame, psnr_db
from benchmarks.int8_families import cpu_seconds
from fastsr import _C
from fastsr.backends.cpu import conv_spec
from fastsr.engine import Engine, make_plan
from fastsr.graph import load

# (label, precision, bf16 family, int8 family)
VARIANTS = [
    ("fp32", "fp32", None, None),
    ("bf16 avx512bf16", "bf16", "avx512bf16", None),
    ("bf16 amx", "bf16", "amx", None),
    ("int8 amx", "int8", None, "amx"),
]


def best_of(programs: dict, rounds: int) -> dict:
    times = {label: [] for label in programs}
    for _ in range(rounds):
        for label, program in programs.items():
            times[label].append(cpu_seconds(program))
    return {label: min(t) for label, t in times.items()}


def forced(bf16: str | None, int8: str | None) -> None:
    _C.set_bf16_isa(bf16)
    _C.set_int8_isa(int8)


def model_programs(model: str, height: int, width: int):
    graph = load(model)
    x = natural_frame(height, width, graph.input_channels)
    programs, outputs = {}, {}
    for label, precision, bf16, int8 in VARIANTS:
        if bf16 not in (None, *_C.supported_bf16_isas()):
            continue
        if int8 not in (None, *_C.supported_int8_isas()):
            continue
        forced(bf16, int8)
        try:
            engine = Engine(graph, "cpu", precision, threads=1)
            outputs[label] = engine.run(x)
            programs[label] = engine.compiled(1, height, width).program
        finally:
            forced(None, None)
    return programs, outputs


def conv_program(spec, h: int, w: int, bf16: str | None):
    """One conv of `spec` on an h x w input: fp32 (auto: Winograd where it fits) or bf16 in
    and out (a conv inside a bf16 chain) on the family `bf16`."""
    cout, cin, kh, kw = spec.weight.shape
    r = spec.shuffle
    oh = (h + 2 * spec.pad_top - spec.dilation * (kh - 1) - 1) // spec.stride + 1
    ow = (w + 2 * spec.pad_left - spec.dilation * (kw - 1) - 1) // spec.stride + 1
    pad = max(spec.pad_top, spec.pad_left)
    args = dict(stride=spec.stride, pad_top=spec.pad_top, pad_left=spec.pad_left,
                dilation=spec.dilation, shuffle=r)  # fmt: skip
    p = _C.Program(1)
    if bf16 is None:
        x = p.view(p.add_buffer(1, h, w, cin, pad), 0, cin)
        out = p.view(p.add_buffer(1, oh * r, ow * r, cout // (r * r)), 0, cout // (r * r))
        p.conv2d(x, out, spec.weight, spec.bias, **args)
        return p, "winograd" if spec.runs_winograd() else "direct"
    forced(bf16, None)
    try:
        x = p.bf16_view(p.add_bf16_buffer(1, h, w, cin, pad), 0, cin)
        out = p.bf16_view(p.add_bf16_buffer(1, oh * r, ow * r, cout // (r * r)), 0, cout // (r * r))
        return p, p.conv2d_bf16(x, spec.weight, spec.bias, out_bf16=out, **args)
    finally:
        forced(None, None)


def layer_rows(models: list[str], height: int, width: int, rounds: int) -> None:
    seen = set()
    for model in models:
        graph = load(model)
        plan = make_plan(graph, 1, height, width)
        producers = graph.producers()
        for node in graph.nodes:
            if node.op != "conv2d":
                continue
            spec = conv_spec(graph, node)
            _, h, w = plan.shapes[producers[node.output].inputs[0]]
            key = (spec.weight.shape, spec.shuffle, h, w)
            if key in seen:
                continue
            seen.add(key)
            programs, kinds = {}, {}
            for family in (None, *_C.supported_bf16_isas()):
                label = family or "fp32"
                programs[label], kinds[label] = conv_program(spec, h, w, family)
            best = best_of(programs, rounds)
            cout, cin, kh, kw = spec.weight.shape
            flops = 2 * cout * cin * kh * kw * h * w / spec.stride**2
            cells = ", ".join(
                f"{label} ({kinds[label]}) {t * 1e3:.2f} ms {flops / t / 1e9:.0f} GFLOP/s "
                f"{best['fp32'] / t:.2f}x"
                for label, t in best.items()
            )
            print(f"{model} conv {cin}->{cout} {kh}x{kw} r{spec.shuffle} at {w}x{h}: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--layers", action="store_true", help="also time each conv shape alone")
    args = parser.parse_args()
    _C.set_simd_level("avx512")
    height, width = 360, 640
    print(
        f"{platform.processor() or platform.machine()}: bf16 families {_C.supported_bf16_isas()}, "
        f"int8 {_C.supported_int8_isas()[0]}, 1 thread, CPU time, best of {args.rounds}"
    )
    if args.layers:
        layer_rows(args.models, height, width, args.rounds)
    for model in args.models:
        programs, outputs = model_programs(model, height, width)
        for label, y in outputs.items():
            floor = FLOOR_DB.get(label.split()[0], 0)
            psnr = psnr_db(y, outputs["fp32"])
            assert psnr > floor, f"{model} {label}: {psnr:.1f} dB against fp32"
        best = best_of(programs, args.rounds)
        cells = ", ".join(
            f"{label} {t * 1e3:.0f} ms ({best['fp32'] / t:.2f}x)" for label, t in best.items()
        )
        print(f"{model} {width}x{height}: {cells}", flush=True)


if __name__ == "__main__":
    main()
