"""Upscale many image files: `upscale_image` takes one file to one output and reports
instead of raising for that file's problems; `upscale_folder` goes on past bad files
and returns a `BatchReport` of what was done, what failed and why, and what was skipped.

Outputs are written under a temporary name and renamed when complete (see
`fastsr.imagefile.write_image`), so a rerun with `skip_existing` resumes a batch safely:
every output that exists is whole. An input is never written to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastsr.imagefile import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_QUALITY,
    FORMATS,
    check_quality,
    is_image,
    read_image_with_metadata,
    write_image,
)

if TYPE_CHECKING:  # imported when used: torch comes with it
    from fastsr.api import Upscaler

DONE, FAILED, SKIPPED = "done", "failed", "skipped"


@dataclass(frozen=True)
class ImageOptions:
    """How outputs are written."""

    quality: int = DEFAULT_QUALITY  # JPEG and lossy WebP, 1-100
    lossless: bool = False  # WebP without loss
    keep_metadata: bool = True  # EXIF, ICC profile, DPI (scaled), PNG text
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger inputs fail before they are decoded

    def __post_init__(self):
        check_quality(self.quality)
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or (
            self.max_pixels < 1
        ):
            raise ValueError(f"max_pixels must be a positive whole number, got {self.max_pixels!r}")


@dataclass(frozen=True)
class ImageResult:
    source: Path
    target: Path
    status: str  # DONE, FAILED or SKIPPED
    reason: str = ""  # why it failed or was skipped
    seconds: float = 0.0
    width: int = 0  # of the output
    height: int = 0
    bytes: int = 0  # size of the output file

    def describe(self) -> str:
        """One line: what was written (done), or why not (naming the input)."""
        if self.status != DONE:
            named = str(self.source) in self.reason
            return self.reason if named else f"{self.source}: {self.reason}"
        return (
            f"{self.target}: {self.width}x{self.height}, {_size(self.bytes)}, "
            f"{self.seconds:.2f} s"
        )


def upscale_image(
    upscaler: Upscaler,
    source: str | Path,
    target: str | Path,
    options: ImageOptions = ImageOptions(),  # noqa: B008 (frozen: safe to share)
    skip_existing: bool = False,
) -> ImageResult:
    """Upscale the image file `source` into `target` (replaced if it exists, unless
    `skip_existing`). Problems of this image (unreadable, too large, out of memory, a
    failed write) come back as a FAILED result, never as an exception; Ctrl-C still
    stops. `target` is never left half-written."""
    source, target = Path(source), Path(target)
    start = time.perf_counter()
    if skip_existing and target.exists():
        return ImageResult(source, target, SKIPPED, "output exists")
    try:
        pixels, metadata = read_image_with_metadata(source, options.max_pixels)
        out = upscaler(pixels)
        height, width = out.shape[:2]
        metadata = metadata.for_output(upscaler.scale, width, height)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, out, metadata if options.keep_metadata else None,
                    options.quality, options.lossless)  # fmt: skip
    except Exception as error:  # one image's failure, whatever it is, is that image's
        return ImageResult(source, target, FAILED, _reason(error), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    return ImageResult(source, target, DONE, "", seconds, width, height, target.stat().st_size)


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, (ValueError, TypeError, OSError, RuntimeError, ImportError)):
        return text or type(error).__name__
    if isinstance(error, MemoryError):
        return "out of memory; lower --max-memory (smaller tiles) or --max-pixels"
    return f"internal error {type(error).__name__}: {text}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if count < 1000 or unit == "MB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


# -- folders ------------------------------------------------------------------------------


@dataclass
class BatchReport:
    results: list[ImageResult] = field(default_factory=list)
    skipped_folders: list[Path] = field(default_factory=list)  # without `recursive`
    seconds: float = 0.0

    def _with(self, status: str) -> list[ImageResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[ImageResult]:
        return self._with(DONE)

    @property
    def failed(self) -> list[ImageResult]:
        return self._with(FAILED)

    @property
    def skipped(self) -> list[ImageResult]:
        return self._with(SKIPPED)

    def summary(self) -> str:
        """The closing line: counts, reasons for skipping, time."""
        reasons: dict[str, int] = {}
        for result in self.skipped:
            reasons[result.reason] = reasons.get(result.reason, 0) + 1
        skipped = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
        line = (
            f"{len(self.done)} done, {len(self.failed)} failed, {len(self.skipped)} skipped"
            f"{f' ({skipped})' if skipped else ''} in {self.seconds:.1f} s"
        )
        if self.skipped_folders:
            names = ", ".join(str(p) for p in self.skipped_folders[:3])
            more = ", ..." if len(self.skipped_folders) > 3 else ""
            line += (
                f"; {_count(len(self.skipped_folders), 'subfolder')} not entered ({names}{more}): "
                "pass --recursive (recursive=True) to include them"
            )
        return line


@dataclass
class Batch:
    """What a folder run will do: (source, target) pairs, files that are not images."""

    jobs: list[tuple[Path, Path]] = field(default_factory=list)
    not_images: list[Path] = field(default_factory=list)
    skipped_folders: list[Path] = field(default_factory=list)


def plan_batch(inputs: Iterable[str | Path], output: str | Path, recursive: bool = False):
    """The `Batch` for files and folders `inputs` into the folder `output`.

    A folder's images go into `output` (its subfolders' into the same subfolders of
    `output` with `recursive`); a file goes into `output` under its own name. Hidden
    files are passed over; `output` itself is never scanned as an input.
    """
    output = Path(output)
    batch = Batch()
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            _plan_folder(batch, path, output, output, recursive)
        elif path.is_file():
            batch.jobs.append((path, output / path.name))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    sources = {source.resolve() for source, _ in batch.jobs}
    targets = [target for _, target in batch.jobs]
    for target in targets:
        if target.resolve() in sources:
            raise ValueError(
                f"output {target} would replace an input; choose another output folder"
            )
    if len(set(targets)) != len(targets):
        raise ValueError(f"two inputs have the same file name; they would collide in {output}")
    return batch


def _plan_folder(batch: Batch, folder: Path, target: Path, output: Path, recursive: bool):
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if path.resolve() == output.resolve():
                continue
            if recursive:
                _plan_folder(batch, path, target / path.name, output, recursive)
            else:
                batch.skipped_folders.append(path)
        elif is_image(path):
            batch.jobs.append((path, target / path.name))
        else:
            batch.not_images.append(path)


def run_batch(
    upscaler: Upscaler,
    batch: Batch,
    options: ImageOptions = ImageOptions(),  # noqa: B008 (frozen: safe to share)
    skip_existing: bool = False,
    on_result: Callable[[ImageResult], None] | None = None,
) -> BatchReport:
    """Upscale every job of `batch` in turn; `on_result` sees each result as it comes."""
    start = time.perf_counter()
    report = BatchReport(skipped_folders=list(batch.skipped_folders))
    for path in batch.not_images:
        report.results.append(ImageResult(path, path, SKIPPED, "not an image file"))
    for source, target in batch.jobs:
        result = upscale_image(upscaler, source, target, options, skip_existing)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    report.seconds = time.perf_counter() - start
    return report


def check_batch(batch: Batch, options: ImageOptions, overwrite: bool, skip_existing: bool):
    """Refuse, before any work, a run that would fail every image of a kind or replace
    outputs nobody asked to replace."""
    jpeg = [t for _, t in batch.jobs if FORMATS.get(t.suffix.lower()) == "JPEG"]
    if options.lossless and jpeg:
        raise ValueError(
            f"--lossless (lossless=True) is for WebP; JPEG outputs such as {jpeg[0]} cannot "
            "be lossless: upscale them in a separate run without it"
        )
    if overwrite and skip_existing:
        raise ValueError("--overwrite and --skip-existing contradict each other; pass one")
    existing = [] if overwrite or skip_existing else [t for _, t in batch.jobs if t.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise FileExistsError(
            f"{existing[0]} exists{more}; pass --skip-existing "
            "(skip_existing=True) to resume, or --overwrite (overwrite=True) to replace them"
        )


def upscale_folder(
    inputs: str | Path | Iterable[str | Path],
    output: str | Path,
    model=None,
    scale: int | None = None,
    backend: str = "auto",
    recursive: bool = False,
    skip_existing: bool = False,
    overwrite: bool = False,
    quality: int = DEFAULT_QUALITY,
    lossless: bool = False,
    keep_metadata: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_result: Callable[[ImageResult], None] | None = None,
) -> BatchReport:
    """Upscale the image files of a folder (or of several folders and files) into the
    folder `output`, created if missing. Unreadable files fail alone; the report lists
    them with their reasons. Non-image files and (without `recursive`) subfolders are
    skipped and counted.

    model: what `fastsr.upscale` takes, or an `Upscaler` (then `scale` and `backend`
        are its own). Existing outputs raise FileExistsError unless `skip_existing`
        (resume) or `overwrite`. The other options are `ImageOptions`'.
    """
    from fastsr.api import Upscaler  # torch: only when a batch runs

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    options = ImageOptions(quality, lossless, keep_metadata, max_pixels)
    batch = plan_batch(inputs, output, recursive)
    check_batch(batch, options, overwrite, skip_existing)
    up = model if isinstance(model, Upscaler) else Upscaler(model, scale, backend)
    Path(output).mkdir(parents=True, exist_ok=True)
    return run_batch(up, batch, options, skip_existing, on_result)
