"""The `fastsr` command (also `python -m fastsr`).

Every failure ends as one line on stderr and a non-zero exit code:
1 an error (nothing written; for a folder: at least one image failed, the others are
done), 2 bad usage, 3 a video stopped early and its output is partial, 130 interrupted.

Only the standard library is imported here; each command imports what it needs (torch
with the engine), so `fastsr --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import fastsr

EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too."""

    def error(self, message: str):
        _fail(f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def _fail(message: str) -> None:
    print(f"fastsr: error: {' '.join(message.split())}", file=sys.stderr)


def _note(message: str) -> None:
    print(f"fastsr: note: {message}", file=sys.stderr)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 100, got {text}")
    return value


def _add_model_options(parser: argparse.ArgumentParser, tiles: bool = True) -> None:
    parser.add_argument("--scale", type=_positive, help="upscaling factor (default: model's)")
    parser.add_argument(
        "--model", default=None, help="shipped model name (quality, fast) or weight file path"
    )
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "triton", "reference"])
    parser.add_argument(
        "--threads", type=_positive, help="CPU threads for the backend (at most the cores)"
    )
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "int8", "bf16", "auto"],
        help="fp32 (default); int8 (cpu, calibrated models: see fastsr quantize); bf16 (cpu "
        "with avx512_bf16 or ARM FEAT_BF16); auto: the fastest whose measured PSNR cost is within "
        "0.1 dB",
    )  # fmt: skip
    if tiles:
        parser.add_argument(
            "--tile", type=_positive, help="tile size in input pixels (default: by memory)"
        )
        parser.add_argument(
            "--max-memory",
            type=_positive,
            metavar="MIB",
            help="working memory per frame before tiling, in MiB (default 1024)",
        )


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _threads(requested: int | None) -> int | None:
    cores = _cores()
    if requested is not None and requested > cores:
        _note(f"--threads {requested} is more than the {cores} CPU cores here; using {cores}")
        return cores
    return requested


def _upscaler(args, progress: bool = False):
    from fastsr.api import DEFAULT_MAX_MEMORY, Upscaler  # torch: only to run a model

    return Upscaler(
        model=args.model,
        scale=args.scale,
        backend=args.backend,
        threads=_threads(args.threads),
        tile=getattr(args, "tile", None),
        max_memory=(getattr(args, "max_memory", None) or DEFAULT_MAX_MEMORY >> 20) << 20,
        progress=progress,
        precision=args.precision,
    )


# -- fastsr upscale -----------------------------------------------------------------------


def _check_directory(directory: Path) -> None:
    """An output folder that does not exist yet is created; one must be writable."""
    directory.mkdir(parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"output folder {directory} is not writable; choose another")


def _single_target(args) -> Path | None:
    """The output file of a one-file run; None when the output is a folder."""
    from fastsr.imagefile import FORMATS

    source, output = Path(args.inputs[0]), Path(args.output)
    if len(args.inputs) != 1 or not source.is_file() or output.is_dir():
        return None
    if args.output.endswith(("/", os.sep)):
        return None
    if output.suffix.lower() not in FORMATS:
        raise ValueError(
            f"output {output} has no image suffix; name a file such as {output}.png "
            f"(suffixes: {', '.join(FORMATS)}), or end a folder name with /"
        )
    return output


def _image_options(args):
    from fastsr.batch import ImageOptions

    given = {"quality": args.quality, "max_pixels": args.max_pixels}  # None: the default
    return ImageOptions(
        lossless=args.lossless,
        keep_metadata=not args.strip_metadata,
        **{name: value for name, value in given.items() if value is not None},
    )


def _run_upscale(args) -> int:
    from fastsr.batch import DONE, Batch, check_batch, plan_batch, upscale_image

    # Pillow warns of damaged files and of images past its size limit: fastsr reports
    # each such file itself, in one line.
    warnings.filterwarnings("ignore", module=r"PIL\.")
    options = _image_options(args)
    target = _single_target(args)
    if target is not None:
        batch = Batch(jobs=[(Path(args.inputs[0]), target)])
    else:
        batch = plan_batch(args.inputs, Path(args.output), args.recursive)
        if not batch.jobs and not batch.skipped_folders:
            raise ValueError(
                f"no image files ({', '.join(_suffixes())}) in {', '.join(args.inputs)}"
            )
    check_batch(batch, options, args.overwrite, args.skip_existing)
    _check_directory(target.parent if target is not None else Path(args.output))
    _ray_options(args)  # the Ray options without --ray are a usage mistake
    if args.ray:
        return _run_upscale_on_ray(args, batch, options)
    up = _upscaler(args, progress=target is not None)
    if target is not None:
        result = upscale_image(up, batch.jobs[0][0], target, options, args.skip_existing)
        if result.status != DONE:
            raise _ImageFailed(result.reason)
        print(result.describe())
        return 0
    return _report_batch(up, batch, options, args.skip_existing)


class _ImageFailed(Exception):
    """The one image of a run failed: its reason is the error line."""


def _suffixes() -> list[str]:
    from fastsr.imagefile import FORMATS

    return [suffix.lstrip(".") for suffix in FORMATS]


def _report_batch(up, batch, options, skip_existing: bool) -> int:
    from tqdm import tqdm

    from fastsr.batch import FAILED, run_batch

    with tqdm(total=len(batch.jobs), unit="image", delay=1, disable=None) as bar:  # None: tty only

        def on_result(result) -> None:
            if result.status == FAILED:
                tqdm.write(f"fastsr: failed: {result.describe()}", file=sys.stderr)
            bar.update(1)

        report = run_batch(up, batch, options, skip_existing, on_result)
    print(report.summary())
    return EXIT_ERROR if report.failed else 0


# -- fastsr video -------------------------------------------------------------------------


def _run_video(args) -> int:
    options = {"codec": args.codec, "crf": args.crf, "pix_fmt": args.pix_fmt,
               "strict": args.strict, "overwrite": args.overwrite}  # fmt: skip
    if args.segment_seconds is not None and not (args.resume or args.ray):
        raise ValueError("--segment-seconds is for segmented jobs: add --resume or --ray")
    if args.ray:
        from fastsr.distributed import upscale_video_on_ray

        result = upscale_video_on_ray(
            args.input, args.output, _upscaler_options(args), resume=args.resume,
            segment_seconds=args.segment_seconds, **_ray_options(args), **options,
        )  # fmt: skip
    elif args.resume:
        from fastsr.segments import SEGMENT_SECONDS, upscale_video_resumable

        seconds = args.segment_seconds or SEGMENT_SECONDS
        result = upscale_video_resumable(
            args.input, args.output, _upscaler(args), resume=True, segment_seconds=seconds,
            **options,
        )  # fmt: skip
    else:
        from fastsr.video import upscale_video

        result = upscale_video(
            args.input, args.output, _upscaler(args), all_or_nothing=args.all_or_nothing,
            **options,
        )  # fmt: skip
    print(result.summary())
    return 0


# -- --ray --------------------------------------------------------------------------------


def _add_ray_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray", action="store_true", help="run on a Ray cluster (pip install fastsr[ray])"
    )
    parser.add_argument(
        "--ray-address", metavar="ADDR",
        help="the cluster to join (default: a local Ray instance started for the run)",
    )  # fmt: skip
    parser.add_argument("--workers", type=_positive, help="Ray workers (default: CPUs / threads)")
    parser.add_argument(
        "--threads-per-worker", type=_positive, metavar="T", help="CPU threads per worker (1)"
    )


def _ray_options(args) -> dict:
    given = {"address": args.ray_address, "workers": args.workers,
             "threads_per_worker": args.threads_per_worker}  # fmt: skip
    if not args.ray and any(value is not None for value in given.values()):
        raise ValueError("--ray-address, --workers and --threads-per-worker need --ray")
    return {name: value for name, value in given.items() if value is not None}


def _upscaler_options(args) -> dict:
    """What each Ray worker builds its Upscaler from (threads: --threads-per-worker)."""
    if args.threads is not None:
        raise ValueError("with --ray, give each worker its CPU threads with --threads-per-worker")
    from fastsr.api import DEFAULT_MAX_MEMORY

    return {
        "model": args.model,
        "scale": args.scale,
        "backend": args.backend,
        "tile": getattr(args, "tile", None),
        "max_memory": (getattr(args, "max_memory", None) or DEFAULT_MAX_MEMORY >> 20) << 20,
        "precision": args.precision,
    }


def _run_upscale_on_ray(args, batch, options) -> int:
    from fastsr.distributed import run_batch_on_ray

    report = run_batch_on_ray(
        batch, _upscaler_options(args), options, args.skip_existing, **_ray_options(args)
    )
    for result in report.failed:
        print(f"fastsr: failed: {result.describe()}", file=sys.stderr)
    print(report.summary())
    return EXIT_ERROR if report.failed else 0


# -- fastsr eval / export-onnx / info / bench ---------------------------------------------


def _run_eval(args) -> int:
    from tqdm import tqdm

    from fastsr.evaluate import evaluate, format_report  # training side: only when asked

    data = Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"no data folder at {data}")
    up = _upscaler(args)
    with tqdm(unit="image", desc="evaluating", delay=1) as bar:

        def upscale_fn(lr):
            bar.update(1)
            return up(lr)

        results = evaluate(upscale_fn, data, up.scale, per_image=args.per_image)
    print(format_report(results))
    return 0


def _run_export_onnx(args) -> int:
    from fastsr.graph import load
    from fastsr.graph.onnx_export import export_onnx  # imports onnx: only when asked

    target = Path(args.output)
    if target.exists() and not args.overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    _check_directory(target.parent)
    graph = load("quality" if args.model is None else args.model, scale=args.scale)
    tmp = target.with_name(f".{target.stem}.fastsr-partial{target.suffix}")
    try:
        export_onnx(graph, tmp, clamp_output=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{target}: x{graph.meta['scale']} {graph.meta['color']} model, output clamped to [0, 1]")
    return 0


def _run_quantize(args) -> int:
    from fastsr.quantize import quantize_model

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    if not Path(args.calibration).is_dir():
        raise FileNotFoundError(f"no calibration folder at {args.calibration}")
    graph = quantize_model(args.model, args.calibration, output, args.estimator, args.images)
    layers = len(graph.meta["int8"]["layers"])
    print(f"{output}: {layers} int8 convs, {args.estimator} ranges from {args.images} crops")
    return 0


def _installed_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _run_info(args) -> int:
    """Imports torch only where a GPU driver is present (to ask CUDA) or a model needs it."""
    from fastsr.backends import backend_status, gpu_driver_present
    from fastsr.graph import shipped_models

    print(f"fastsr {fastsr.__version__} (torch {_installed_version('torch')})")
    status = backend_status()
    for name, reason in status.items():
        print(f"backend {name}: {'available' if reason is None else 'unavailable: ' + reason}")
    try:
        from fastsr import _C

        print(f"cpu kernels: {_C.simd_level()} SIMD, {_C.max_threads()} threads")
        print(f"int8 kernels: {_C.int8_isa()}")
        bf16 = _C.bf16_isa()
        if bf16 == "none":
            bf16 += " (needs avx512_bf16 at avx512, or FEAT_BF16 at neon)"
        print(f"bf16 kernels: {bf16}")
    except ImportError as error:
        print(f"cpu kernels: not built ({error})")
    print(f"triton: {_installed_version('triton')}")
    print(f"cuda: {_cuda_device() if gpu_driver_present() else 'no device (no GPU driver)'}")
    models = shipped_models()
    print(f"shipped models: {', '.join(m['name'] for m in models) or 'none installed'}")
    _print_auto_precision(models)
    if args.model is not None:
        from fastsr.graph import load
        from fastsr.model_info import model_lines

        print("\n".join(model_lines(load(args.model))))
    return 0


def _cuda_device() -> str:
    try:
        import torch
    except ImportError:
        return "unknown (torch not installed)"
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no device"


def _print_auto_precision(models) -> None:
    from fastsr.backends import availability, get_backend
    from fastsr.graph import load
    from fastsr.quantize import AUTO_ORDER, auto_precision

    if availability("cpu") is not None:
        return
    for model in models:
        graph = load(model["name"])
        costs = [
            f"{p} costs {graph.meta[p]['psnr_cost_db']:.3f} dB Set5"
            for p in AUTO_ORDER
            if graph.meta.get(p, {}).get("psnr_cost_db") is not None
        ]
        measured = ", ".join(costs) or "no measured cost of a lower precision"
        print(
            f"  {model['name']}: precision auto -> {auto_precision(graph, get_backend('cpu'))}"
            f" on cpu ({measured})"
        )


def _run_bench(args) -> int:
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if not folder.is_dir():
        raise FileNotFoundError(
            "the benchmarks live in the source repository's benchmarks/ folder, which this "
            "installation does not have; clone the repository and run `fastsr bench` there"
        )
    command = [sys.executable, "-m", "pytest", str(folder), "--benchmark-only", *args.pytest_args]
    env = dict(os.environ, FASTSR_BENCH_SWEEP="1") if args.sweep else None
    return subprocess.call(command, env=env)


# -- the parser and the error boundary ----------------------------------------------------

_UPSCALE_EPILOG = """\
Metadata: the EXIF orientation is applied (outputs are upright, orientation reset to 1);
EXIF, ICC profile, DPI and PNG text are written where the output format holds them. DPI
is multiplied by the scale, so the physical print size stays the same (a 300-dpi
6x4-inch photo upscaled x2 is 600 dpi at 6x4 inches). --strip-metadata writes none.

A folder run goes on past files that fail, prints one line for each, ends with a
summary (done / failed / skipped, time) and exits 1 if any failed. Outputs are written
whole or not at all, so --skip-existing resumes an interrupted run.
"""


def _add_upscale_command(commands) -> None:
    upscale = commands.add_parser(
        "upscale",
        help="upscale image files or folders of them",
        epilog=_UPSCALE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upscale.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders")
    upscale.add_argument(
        "-o", "--output", required=True,
        help="output file (one input file) or folder (created if missing)",
    )  # fmt: skip
    _add_model_options(upscale)
    upscale.add_argument(
        "--quality", type=_quality, help="JPEG and WebP quality 1-100 (default 95; JPEG 4:4:4)"
    )
    upscale.add_argument("--lossless", action="store_true", help="lossless WebP")
    upscale.add_argument(
        "--strip-metadata", action="store_true", help="write no EXIF, ICC profile, DPI or text"
    )
    upscale.add_argument(
        "--max-pixels", type=_positive, metavar="N",
        help="refuse inputs of more than N pixels (default 89478485, Pillow's guard "
        "against decompression bombs); raise it to allow a genuinely huge image",
    )  # fmt: skip
    upscale.add_argument("--recursive", action="store_true", help="enter subfolders, mirror them")
    existing = upscale.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    existing.add_argument(
        "--skip-existing", action="store_true", help="leave existing outputs (resume a batch)"
    )
    _add_ray_options(upscale)
    upscale.set_defaults(run=_run_upscale)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastsr", description="Fast image and video super-resolution.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_upscale_command(commands)

    video = commands.add_parser("video", help="upscale a video file (audio/subtitles copied)")
    video.add_argument("input", metavar="IN")
    video.add_argument("output", metavar="OUT")
    _add_model_options(video)
    video.add_argument("--codec", default="libx264", help="video encoder (default libx264)")
    video.add_argument("--crf", type=int, help="constant rate factor (default 18)")
    video.add_argument("--pix-fmt", help="pixel format (default: the input's)")
    video.add_argument(
        "--all-or-nothing", action="store_true", help="leave no file if the run stops early"
    )
    video.add_argument(
        "--strict", action="store_true", help="stop at an undecodable packet (default: skip it)"
    )
    video.add_argument("--overwrite", action="store_true", help="replace an existing output")
    video.add_argument(
        "--resume", action="store_true",
        help="run as a job of keyframe segments kept next to the output; after an "
        "interrupt the same command redoes only the unfinished segments",
    )  # fmt: skip
    video.add_argument(
        "--segment-seconds", type=float, metavar="S", help="segment length (default 10)"
    )
    _add_ray_options(video)
    video.set_defaults(run=_run_video)

    evaluate = commands.add_parser("eval", help="PSNR/SSIM on folders of HR images")
    evaluate.add_argument(
        "--data", required=True, help="folder of HR images, or of dataset folders (Set5...)"
    )
    _add_model_options(evaluate, tiles=False)
    evaluate.add_argument("--per-image", action="store_true", help="also score each image")
    evaluate.set_defaults(run=_run_eval)

    export = commands.add_parser(
        "export-onnx", help="write a model as an ONNX file (output clamped to [0, 1])"
    )
    export.add_argument("model", metavar="MODEL", help="shipped name or weight file")
    export.add_argument("output", metavar="OUT.onnx")
    export.add_argument("--scale", type=_positive)
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(run=_run_export_onnx)

    quantize = commands.add_parser(
        "quantize", help="calibrate a model for int8 and write it as a loadable graph file"
    )
    quantize.add_argument("model", metavar="MODEL", help="shipped name or model file")
    quantize.add_argument("--calibration", required=True, metavar="DIR", help="folder of images")
    quantize.add_argument("-o", "--output", required=True, metavar="OUT.safetensors")
    quantize.add_argument("--estimator", default="mse", choices=["max", "percentile", "mse"])
    quantize.add_argument("--images", type=_positive, default=16, help="crops (default 16)")
    quantize.add_argument("--overwrite", action="store_true")
    quantize.set_defaults(run=_run_quantize)

    info = commands.add_parser("info", help="version, backends, CPU features, models")
    info.add_argument("model", metavar="MODEL", nargs="?",
                      help="also say how this model runs (kernels or PyTorch) and why")
    info.set_defaults(run=_run_info)

    bench = commands.add_parser(
        "bench", help="run the benchmark suite (pytest-benchmark); other options go to pytest"
    )
    bench.add_argument("--sweep", action="store_true",
                       help="every size, batch and benchmark (FASTSR_BENCH_SWEEP=1); the "
                            "default is the headline cases at 640x360, within 10 min on 2 cores")
    bench.set_defaults(run=_run_bench)
    return parser


def _version() -> str:
    return f"fastsr {fastsr.__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "bench":  # only bench passes unknown options on
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as stop:  # --help, --version, or a usage error already reported
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    args.pytest_args = extra
    try:
        return args.run(args)
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:
        return _report_error(error)


def _report_error(error: Exception) -> int:
    """The one line for an error that ended a command, and its exit code."""
    from fastsr.video import PartialOutputError  # here: the module imports numpy

    if isinstance(error, PartialOutputError):
        _fail(str(error))
        return EXIT_INTERRUPTED if error.interrupted else EXIT_PARTIAL
    if getattr(error, "interrupted", False):  # a segmented job stopped by Ctrl-C
        _fail(str(error))
        return EXIT_INTERRUPTED
    if isinstance(error, (_ImageFailed, ValueError, TypeError, OSError, RuntimeError, ImportError)):
        _fail(str(error) or type(error).__name__)
    else:  # anything else is a bug, but still one line: name it
        _fail(f"internal error {type(error).__name__}: {error}")
    return EXIT_ERROR
