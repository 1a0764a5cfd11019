"""Turn a pytest-benchmark JSON into BENCHMARKS.md and a quality-against-speed plot.

    pytest benchmarks --benchmark-only --benchmark-json=BENCH.json
    python -m benchmarks.report BENCH.json -o BENCHMARKS.md

Every figure is derived from the JSON: the median time of each benchmark and the facts the
suite stored with it (GFLOP per frame, batch, max error, PSNR) and with the machine (FMA
peak, threads). Speed-ups compare runs of the same network, input size and batch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Order of the rows in a model's table: ours first, then the peers.
RUNNER_ORDER = [
    "fastsr_cpu",
    "fastsr_triton",
    "fastsr_reference",
    "torch_eager",
    "torch_channels_last",
    "onnxruntime",
]
BASELINES = {"eager": "torch_eager", "ort": "onnxruntime"}
PLOT_SIZE = (640, 360)  # DESIGN.md: speed is quoted at 640x360
FASTSR_RUNNERS = ("fastsr_cpu", "fastsr_triton")


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def model_rows(bench: dict) -> list[dict]:
    """One dict per throughput benchmark, with ms/frame, fps, GFLOP/s, % peak and speed-ups."""
    peak = bench.get("machine_info", {}).get("fastsr", {}).get("fma_peak_gflops")
    rows = []
    for entry in bench["benchmarks"]:
        info = entry["extra_info"]
        if info.get("kind") != "model":
            continue
        seconds = entry["stats"]["median"]
        fps = info["batch"] / seconds
        gflops = info["gflop_per_frame"] * fps
        rows.append(
            dict(
                info,
                ms_per_frame=1e3 / fps,
                fps=fps,
                gflops=gflops,
                pct_peak=100 * gflops / peak if peak else None,
            )
        )
    by_key = {(r["model"], r["width"], r["height"], r["batch"], r["runner"]): r for r in rows}
    for row in rows:
        for label, runner in BASELINES.items():
            base = by_key.get((row["model"], row["width"], row["height"], row["batch"], runner))
            row[f"vs_{label}"] = base["ms_per_frame"] / row["ms_per_frame"] if base else None
    return rows


def _runner_rank(runner: str) -> int:
    return RUNNER_ORDER.index(runner) if runner in RUNNER_ORDER else len(RUNNER_ORDER)


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def model_tables(rows: list[dict]) -> list[str]:
    lines = []
    for model in sorted({r["model"] for r in rows}, key=lambda m: (not _headline(rows, m), m)):
        mine = [r for r in rows if r["model"] == model]
        first = mine[0]
        notes = [f"×{first['scale']}", f"{first['weights']} weights"]
        if first.get("headline"):
            notes.append("headline network")
        lines += [f"### {model} ({', '.join(notes)})", ""]
        lines.append(
            "| runner | input | batch | ms/frame | fps | GFLOP/s | % peak | × eager | × ORT "
            "| max err vs eager |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        order = sorted(
            mine, key=lambda r: (r["width"] * r["height"], r["batch"], _runner_rank(r["runner"]))
        )
        for r in order:
            lines.append(
                f"| {r['runner']} | {r['width']}×{r['height']} | {r['batch']} "
                f"| {r['ms_per_frame']:.1f} | {r['fps']:.2f} | {r['gflops']:.1f} "
                f"| {_fmt(r['pct_peak'], '.0f', '%')} | {_fmt(r['vs_eager'], '.2f', '×')} "
                f"| {_fmt(r['vs_ort'], '.2f', '×')} | {r['max_err']:.1e} |"
            )
        lines.append("")
    return lines


def summary_table(rows: list[dict]) -> list[str]:
    """Frames per second of every runner at 640x360, batch 1: the figures issue targets use."""
    at_size = [r for r in rows if (r["width"], r["height"]) == PLOT_SIZE and r["batch"] == 1]
    if not at_size:
        return []
    runners = sorted({r["runner"] for r in at_size}, key=_runner_rank)
    models = sorted({r["model"] for r in at_size}, key=lambda m: (not _headline(rows, m), m))
    fps = {(r["model"], r["runner"]): r for r in at_size}
    lines = [
        f"## Frames per second at {PLOT_SIZE[0]}×{PLOT_SIZE[1]}, batch 1",
        "",
        "| model | " + " | ".join(runners) + " | fastsr cpu × eager | fastsr cpu × ORT |",
        "|---" * (len(runners) + 3) + "|",
    ]
    for model in models:
        cells = [_fmt(fps.get((model, r), {}).get("fps"), ".2f") for r in runners]
        ours = fps.get((model, "fastsr_cpu"), {})
        ratios = [_fmt(ours.get("vs_eager"), ".2f", "×"), _fmt(ours.get("vs_ort"), ".2f", "×")]
        lines.append(f"| {model} | " + " | ".join(cells + ratios) + " |")
    return lines + [""]


def _headline(rows: list[dict], model: str) -> bool:
    return any(r.get("headline") for r in rows if r["model"] == model)


def _infos(bench: dict, kind: str) -> list[tuple[dict, dict]]:
    return [
        (e["extra_info"], e["stats"])
        for e in bench["benchmarks"]
        if e["extra_info"].get("kind") == kind
    ]


PRECISION_ORDER = ["fp32", "int8", "bf16", "fp16"]


def precision_rows(bench: dict) -> list[dict]:
    """One dict per engine x precision run, with ms/frame, fps, the speed-up over fastsr
    fp32 and the Set5 PSNR change from it (same model and frame, same run)."""
    rows = [
        dict(info, ms_per_frame=1e3 * stats["median"], fps=1 / stats["median"])
        for info, stats in _infos(bench, "precision")
    ]
    key = lambda r: (r["model"], r["width"], r["height"])  # noqa: E731
    fp32 = {key(r): r for r in rows if (r["engine"], r["precision"]) == ("fastsr", "fp32")}
    for row in rows:
        base = fp32.get(key(row))
        row["vs_fastsr_fp32"] = base["ms_per_frame"] / row["ms_per_frame"] if base else None
        have = base and base.get("set5_psnr") is not None and row.get("set5_psnr") is not None
        row["set5_delta"] = row["set5_psnr"] - base["set5_psnr"] if have else None
    return rows


def _precision_rank(row: dict) -> tuple:
    order = PRECISION_ORDER + [row["precision"]]
    return (row["engine"] != "fastsr", row["engine"], order.index(row["precision"]))


def precision_table(bench: dict) -> list[str]:
    rows = precision_rows(bench)
    if not rows:
        return []
    lines = [
        "## Precisions: fastsr and quantised peers",
        "",
        "| model | input | engine | precision | ms/frame | fps | × fastsr fp32 | Set5 PSNR (Y) "
        "| Δ vs fastsr fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(rows, key=lambda r: (r["model"], r["width"] * r["height"], _precision_rank(r)))
    for r in order:
        lines.append(
            f"| {r['model']} | {r['width']}×{r['height']} | {r['engine']} | {r['precision']} "
            f"| {r['ms_per_frame']:.1f} | {r['fps']:.2f} | {_fmt(r['vs_fastsr_fp32'], '.2f', '×')} "
            f"| {_fmt(r.get('set5_psnr'), '.2f', ' dB')} | {_fmt(r['set5_delta'], '+.3f', ' dB')} |"
        )
    return lines + [""]


SPANDREL_PEERS = {"eager": "eager PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def spandrel_table(bench: dict) -> list[str]:
    """spandrel models: fastsr's time, each peer's time and its ratio to fastsr's (same
    model, frame and run; > 1 is fastsr faster), and every runner's error against eager."""
    cases: dict[tuple, dict[str, tuple[dict, dict]]] = {}
    for info, stats in _infos(bench, "spandrel"):
        key = (info["model"], info["width"], info["height"])
        cases.setdefault(key, {})[info["runner"]] = (info, stats)
    if not cases:
        return []
    names = ["fastsr", *SPANDREL_PEERS]
    lines = [
        "## spandrel models",
        "",
        "| model | input | path | fastsr | "
        + " | ".join(f"{label} (× fastsr)" for label in SPANDREL_PEERS.values())
        + " | max error vs eager (" + " / ".join(names) + ") |",
        "|---|---|---|" + "---|" * (len(names) + 1),
    ]
    for (model, w, h), runs in sorted(cases.items()):
        ours = runs.get("fastsr")
        ours_ms = 1e3 * ours[1]["median"] if ours else None
        path = next(iter(runs.values()))[0].get("path", "–")
        cells = [_fmt(ours_ms, ".0f", " ms")]
        for runner in SPANDREL_PEERS:
            if runner not in runs:
                cells.append("–")
                continue
            ms = 1e3 * runs[runner][1]["median"]
            ratio = f" ({ms / ours_ms:.2f}×)" if ours_ms else ""
            cells.append(f"{ms:.0f} ms{ratio}")
        errors = " / ".join(
            _fmt(runs[n][0].get("max_err"), ".1e") if n in runs else "–" for n in names
        )
        lines.append(f"| {model} | {w}×{h} | {path} | " + " | ".join(cells) + f" | {errors} |")
    return lines + [""]


def bicubic_table(bench: dict) -> list[str]:
    entries = _infos(bench, "bicubic")
    if not entries:
        return []
    lines = [
        "## Bicubic peers (RGB uint8 frame)",
        "",
        "| scale | input | implementation | ms | fps | Mpix out/s | diff mean / max (levels) |",
        "|---|---|---|---|---|---|---|",
    ]
    for info, stats in sorted(
        entries, key=lambda e: (e[0]["scale"], e[0]["width"], e[1]["median"])
    ):
        ms = 1e3 * stats["median"]
        mpix = info["width"] * info["height"] * info["scale"] ** 2 / 1e6 / stats["median"]
        lines.append(
            f"| ×{info['scale']} | {info['width']}×{info['height']} | {info['implementation']} "
            f"| {ms:.2f} | {1e3 / ms:.1f} | {mpix:.0f} "
            f"| {info['mean_level_diff']:.2f} / {info['max_level_diff']} |"
        )
    return lines + [""]


def quality_points(bench: dict, rows: list[dict]) -> list[dict]:
    """PSNR with the speed of the same model (fastest fastsr runner, else the fastest peer)
    at 640x360 batch 1, or at the largest size measured; bicubic with its fastest peer."""
    points = []
    bicubic = _infos(bench, "bicubic")
    for info, _ in _infos(bench, "quality"):
        if info["model"] == "bicubic":
            runs = [(i, s) for i, s in bicubic if i["scale"] == info["scale"]]
            runs = [dict(i, fps=1 / s["median"], runner=i["implementation"]) for i, s in runs]
        else:
            runs = [r for r in rows if r["model"] == info["model"] and r["batch"] == 1]
            ours = [r for r in runs if r["runner"] in FASTSR_RUNNERS]
            runs = ours or runs
        if not runs:
            continue
        size = max(
            {(r["width"], r["height"]) for r in runs}, key=lambda s: (s == PLOT_SIZE, s[0] * s[1])
        )
        best = max((r for r in runs if (r["width"], r["height"]) == size), key=lambda r: r["fps"])
        points.append(
            dict(
                model=info["model"],
                scale=info["scale"],
                psnr=info["psnr"],
                ssim=info["ssim"],
                data=info["data"],
                per_dataset=info.get("per_dataset", {}),
                fps=best["fps"],
                runner=best["runner"],
                size=size,
            )
        )
    return points


def quality_table(points: list[dict]) -> list[str]:
    if not points:
        return []
    lines = [
        f"## Quality against speed (data: {points[0]['data']})",
        "",
        "| model | scale | PSNR / SSIM (Y) per dataset | mean PSNR | fps | measured with |",
        "|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: (p["scale"], -p["psnr"])):
        datasets = ", ".join(
            f"{name} {s['psnr']:.2f} / {s['ssim']:.4f}"
            for name, s in sorted(p["per_dataset"].items())
        )
        lines.append(
            f"| {p['model']} | ×{p['scale']} | {datasets or '–'} | {p['psnr']:.2f} "
            f"| {p['fps']:.2f} | {p['runner']} at {p['size'][0]}×{p['size'][1]} |"
        )
    return lines + [""]


def plot_quality_speed(points: list[dict], path: Path) -> Path | None:
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for scale, marker in ((2, "o"), (3, "^"), (4, "s")):
        mine = [p for p in points if p["scale"] == scale]
        if not mine:
            continue
        axes.scatter(
            [p["fps"] for p in mine], [p["psnr"] for p in mine], marker=marker, label=f"×{scale}"
        )
        for p in mine:
            axes.annotate(
                f"{p['model']} ({p['runner']})",
                (p["fps"], p["psnr"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
    axes.set_xscale("log")
    axes.margins(x=0.3, y=0.15)  # room for the labels
    axes.set_xlabel("frames per second (log scale)")
    axes.set_ylabel("PSNR on Y (dB)")
    width, height = points[0]["size"]
    axes.set_title(f"Quality against speed ({width}×{height} input; PSNR: mean over datasets)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def scaling_table(bench: dict) -> list[str]:
    entries = _infos(bench, "scaling")
    if not entries:
        return []
    lines = [
        "## Cost against input size and threads",
        "",
        "| model | runner | threads | input | ms/frame | ms per Mpixel |",
        "|---|---|---|---|---|---|",
    ]
    key = lambda e: (e[0]["runner"], e[0]["threads"], e[0]["pixels"])  # noqa: E731
    for info, stats in sorted(entries, key=key):
        ms = 1e3 * stats["median"]
        lines.append(
            f"| {info['model']} | {info['runner']} | {info['threads']} "
            f"| {info['width']}×{info['height']} | {ms:.1f} | {ms / (info['pixels'] / 1e6):.1f} |"
        )
    return lines + [""]


def memory_table(bench: dict) -> list[str]:
    entries = _infos(bench, "memory")
    if not entries:
        return []
    lines = [
        "## Peak memory of a tiled upscale",
        "",
        "| input | model | scale | peak RSS | added by call | beyond output | budget | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    mib = 2**20
    for info, _ in entries:
        lines.append(
            f"| {info['width']}×{info['height']} | {info['model']} | ×{info['scale']} "
            f"| {info['peak_rss_bytes'] / mib:.0f} MiB | {info['added_rss_bytes'] / mib:.0f} MiB "
            f"| {info['working_bytes'] / mib:.0f} MiB | {info['budget_bytes'] / mib:.0f} MiB "
            f"| {info['seconds']:.1f} |"
        )
    return lines + [""]


def front_door_table(bench: dict) -> list[str]:
    """The user path (Upscaler, uint8 in and out) against the engine, and start-up times."""
    doors = _infos(bench, "front_door")
    starts = _infos(bench, "startup")
    lines = []
    if doors:
        lines += [
            "## What the user calls against the engine",
            "",
            "| model | input | threads | engine ms | Upscaler uint8 ms | user / engine |",
            "|---|---|---|---|---|---|",
        ]
        for info, _ in sorted(doors, key=lambda e: (e[0]["model"], e[0]["width"])):
            lines.append(
                f"| {info['model']} | {info['width']}×{info['height']} | {info['threads']} "
                f"| {info['engine_ms']:.1f} | {info['user_ms']:.1f} "
                f"| {info['user_over_engine']:.3f} |"
            )
        lines.append("")
    for info, _ in _infos(bench, "video_stages"):
        steps = list(next(iter(info["paths"].values()))["shares"])
        lines += [
            f"## `fastsr video` with {info['model']}, {info['width']}×{info['height']}, "
            f"{info['threads']} threads",
            "",
            f"The engine alone: {info['engine_fps']:.1f} frames/s. Frames as YUV planes (the "
            "cpu backend's path) and through RGB + swscale, in the same rounds; each step's "
            "share of the wall time it is busy (they overlap):",
            "",
            "| frames as | frames/s | model step frames/s | CPU ms/frame | "
            + " | ".join(steps) + " |",
            "|" + "---|" * (4 + len(steps)),
        ]  # fmt: skip
        for path, row in info["paths"].items():
            shares = " | ".join(f"{100 * row['shares'][s]:.0f} %" for s in steps)
            lines.append(
                f"| {path} | {row['fps']:.1f} | {row['model_step_fps']:.1f} "
                f"| {row['cpu_ms_per_frame']:.0f} | {shares} |"
            )
        lines.append("")
    if starts:
        lines += ["## Start-up", "", "| command | s (median) |", "|---|---|"]
        for info, stats in starts:
            lines.append(f"| `{info['what']}` | {stats['median']:.2f} |")
        lines.append("")
    return lines


def machine_lines(bench: dict) -> list[str]:
    machine = bench.get("machine_info", {})
    facts = machine.get("fastsr", {})
    peak = facts.get("fma_peak_gflops")
    versions = ", ".join(f"{k} {v}" for k, v in facts.get("versions", {}).items())
    cpu = facts.get("cpu_model", machine.get("cpu", "?"))
    source = facts.get("fma_peak_source", "not measured")
    load = _fmt(facts.get("loadavg_1min"), ".1f")
    return [
        f"Measured {bench.get('datetime', '?')} on {cpu} ({facts.get('cpu_count', '?')} CPUs), "
        f"{facts.get('threads', '?')} threads for every engine, SIMD "
        f"{facts.get('simd_level', '?')}, load average {load} at the end of the run, "
        f"{facts.get('mode', '?')} mode.",
        "",
        f"FMA peak: {_fmt(peak, '.0f', ' GFLOP/s')} ({source}).",
        "",
        f"Versions: {versions or '?'}.",
        "",
        "ms/frame is the median time of a call divided by the batch; GFLOP/s counts the "
        "convolutions' multiply-adds ×2; × eager and × ORT are frame-rate ratios against eager "
        "PyTorch (as trained, NCHW) and ONNX Runtime measured in the same run; max err is the "
        "largest |difference| from eager PyTorch on the same input.",
        "",
    ]


def comparison(bench: dict) -> str:
    """The tables `pytest benchmarks --benchmark-only` prints at its end: every engine and
    precision side by side at 640x360."""
    lines = summary_table(model_rows(bench)) + precision_table(bench)
    lines += spandrel_table(bench) + front_door_table(bench)
    return "\n".join(lines).rstrip() + "\n" if lines else ""


def render(bench: dict, plot_name: str | None = None) -> str:
    rows = model_rows(bench)
    points = quality_points(bench, rows)
    lines = ["# fastsr benchmarks", "", *machine_lines(bench)]
    if rows:
        lines += summary_table(rows)
        lines += ["## Throughput per network", "", *model_tables(rows)]
    lines += precision_table(bench) + spandrel_table(bench)
    lines += quality_table(points)
    if plot_name and points:
        lines += [f"![quality against speed]({plot_name})", ""]
    lines += bicubic_table(bench) + scaling_table(bench) + memory_table(bench)
    lines += front_door_table(bench)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("json", help="a pytest-benchmark JSON (--benchmark-json=...)")
    parser.add_argument("-o", "--output", default="BENCHMARKS.md", help="markdown to write")
    parser.add_argument("--plot", help="PNG to write (default: next to the markdown)")
    parser.add_argument(
        "--peak",
        type=float,
        help="FMA peak in GFLOP/s to use instead of the one measured in the run",
    )
    args = parser.parse_args(argv)
    bench = load(args.json)
    if args.peak:
        facts = bench.setdefault("machine_info", {}).setdefault("fastsr", {})
        facts["fma_peak_gflops"], facts["fma_peak_source"] = args.peak, "given with --peak"
    output = Path(args.output)
    plot = Path(args.plot) if args.plot else output.with_name("quality_vs_speed.png")
    written = plot_quality_speed(quality_points(bench, model_rows(bench)), plot)
    name = None
    if written is not None:
        same_folder = written.resolve().parent == output.resolve().parent
        name = written.name if same_folder else str(written.resolve())
    output.write_text(render(bench, name))
    print(f"wrote {output}" + (f" and {written}" if written else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
