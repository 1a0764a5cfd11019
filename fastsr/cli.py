"""The `fastsr` command (also `python -m fastsr`).

Every failure ends as one line on stderr and a non-zero exit code:
1 an error (nothing written), 2 bad usage, 3 a video stopped early and its output is
partial, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch
from tqdm import tqdm

import fastsr
from fastsr.api import DEFAULT_MAX_MEMORY, Upscaler
from fastsr.backends import backend_status
from fastsr.graph import load, shipped_models
from fastsr.imageio import FORMATS, is_image, read_image, write_image
from fastsr.video import PartialOutputError, upscale_video

EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too."""

    def error(self, message: str):
        _fail(f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def _fail(message: str) -> None:
    print(f"fastsr: error: {' '.join(message.split())}", file=sys.stderr)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def _add_model_options(parser: argparse.ArgumentParser, tiles: bool = True) -> None:
    parser.add_argument("--scale", type=_positive, help="upscaling factor (default: model's)")
    parser.add_argument(
        "--model", default=None, help="shipped model name (quality, fast) or weight file path"
    )
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "triton", "reference"])
    parser.add_argument("--threads", type=_positive, help="CPU threads for the backend")
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


def _upscaler(args, progress: bool = False):
    return Upscaler(
        model=args.model,
        scale=args.scale,
        backend=args.backend,
        threads=args.threads,
        tile=getattr(args, "tile", None),
        max_memory=(getattr(args, "max_memory", None) or DEFAULT_MAX_MEMORY >> 20) << 20,
        progress=progress,
    )


# -- fastsr upscale -----------------------------------------------------------------------


def _collect_images(inputs: list[str]) -> list[Path]:
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image(p))
            if not found:
                raise ValueError(f"no image files (png, jpg, webp, bmp, tif) in folder {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def _check_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"output directory {directory} is not writable")


def _output_paths(inputs: list[str], files: list[Path], output: Path) -> list[Path]:
    """One output per file: `output` itself for a single file, else a folder of names."""
    single = len(files) == 1 and Path(inputs[0]).is_file() and not output.is_dir()
    if single:
        if output.suffix.lower() not in FORMATS:
            raise ValueError(
                f"output {output} has no image suffix; expected one of {', '.join(FORMATS)}"
            )
        _check_directory(output.parent)
        return [output]
    _check_directory(output)
    targets = [output / f.name for f in files]
    if len(set(targets)) != len(targets):
        raise ValueError(f"two inputs have the same file name; they would collide in {output}")
    return targets


def _run_upscale(args) -> int:
    files = _collect_images(args.inputs)
    targets = _output_paths(args.inputs, files, Path(args.output))
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it")
    up = _upscaler(args, progress=len(files) == 1)
    for source, target in tqdm(
        list(zip(files, targets, strict=True)), unit="image", delay=1, disable=len(files) == 1
    ):
        write_image(target, up(read_image(source)))
    return 0


# -- fastsr video -------------------------------------------------------------------------


def _run_video(args) -> int:
    result = upscale_video(
        args.input,
        args.output,
        _upscaler(args),
        codec=args.codec,
        crf=args.crf,
        pix_fmt=args.pix_fmt,
        all_or_nothing=args.all_or_nothing,
        strict=args.strict,
        overwrite=args.overwrite,
    )
    print(result.summary())
    return 0


# -- fastsr eval / export-onnx / info / bench ---------------------------------------------


def _run_eval(args) -> int:
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
    from fastsr.graph.onnx_export import export_onnx  # imports onnx: only when asked

    target = Path(args.output)
    if target.exists() and not args.overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    _check_directory(target.parent)
    graph = load("quality" if args.model is None else args.model, scale=args.scale)
    tmp = target.with_name(f".{target.stem}.fastsr-partial{target.suffix}")
    try:
        export_onnx(graph, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{target}: x{graph.meta['scale']} {graph.meta['color']} model")
    return 0


def _run_info(args) -> int:
    print(f"fastsr {fastsr.__version__} (torch {torch.__version__})")
    for name, reason in backend_status().items():
        print(f"backend {name}: {'available' if reason is None else 'unavailable: ' + reason}")
    try:
        from fastsr import _C

        print(f"cpu kernels: {_C.simd_level()} SIMD, {_C.max_threads()} threads")
    except ImportError as error:
        print(f"cpu kernels: not built ({error})")
    try:
        import triton

        print(f"triton: {triton.__version__}")
    except ImportError:
        print("triton: not installed")
    cuda = torch.cuda.is_available()
    print(f"cuda: {torch.cuda.get_device_name(0) if cuda else 'no device'}")
    models = shipped_models()
    print(f"shipped models: {', '.join(m['name'] for m in models) or 'none installed'}")
    return 0


def _run_bench(args) -> int:
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if not folder.is_dir():
        raise FileNotFoundError(
            "the benchmarks live in the source repository's benchmarks/ folder, which this "
            "installation does not have; clone the repository and run `fastsr bench` there"
        )
    command = [sys.executable, "-m", "pytest", str(folder), "--benchmark-only", *args.pytest_args]
    return subprocess.call(command)


# -- the parser and the error boundary ----------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastsr", description="Fast image and video super-resolution.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    upscale = commands.add_parser("upscale", help="upscale image files or folders of them")
    upscale.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders")
    upscale.add_argument("-o", "--output", required=True, help="output file or folder")
    _add_model_options(upscale)
    upscale.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    upscale.set_defaults(run=_run_upscale)

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
    video.set_defaults(run=_run_video)

    evaluate = commands.add_parser("eval", help="PSNR/SSIM on folders of HR images")
    evaluate.add_argument("--data", required=True, help="folder of dataset folders (Set5...)")
    _add_model_options(evaluate, tiles=False)
    evaluate.add_argument("--per-image", action="store_true", help="also score each image")
    evaluate.set_defaults(run=_run_eval)

    export = commands.add_parser("export-onnx", help="write a model as an ONNX file")
    export.add_argument("model", metavar="MODEL", help="shipped name or weight file")
    export.add_argument("output", metavar="OUT.onnx")
    export.add_argument("--scale", type=_positive)
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(run=_run_export_onnx)

    info = commands.add_parser("info", help="version, backends, CPU features, models")
    info.set_defaults(run=_run_info)

    bench = commands.add_parser(
        "bench", help="run the benchmark suite (pytest-benchmark); other options go to pytest"
    )
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
    except PartialOutputError as error:
        _fail(str(error))
        return EXIT_INTERRUPTED if error.interrupted else EXIT_PARTIAL
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as error:
        _fail(str(error) or type(error).__name__)
        return EXIT_ERROR
    except Exception as error:  # anything else is a bug, but still one line: name it
        _fail(f"internal error {type(error).__name__}: {error}")
        return EXIT_ERROR
