"""Which csrc/ files the C++ backend builds and with which flags: a pure function of the
platform, the compiler family and the machine, so each platform's choice is tested on any
(tests/test_build_config.py). setup.py builds by it, tests/kernel_check_build.py too."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

FLAGS = json.loads((Path(__file__).parent / "csrc" / "compile_flags.json").read_text())
X86 = ("x86_64", "amd64")
ARM64 = ("aarch64", "arm64")
# Homebrew's prefix by machine: Apple Silicon /opt/homebrew, Intel /usr/local. The other may
# hold a libomp of the other architecture (Rosetta's Homebrew), which the linker rejects.
HOMEBREW = {"arm64": "/opt/homebrew/opt/libomp", "x86_64": "/usr/local/opt/libomp"}


@dataclass(frozen=True)
class BuildConfig:
    compile_args: list[str]
    link_args: list[str]
    include_dirs: list[str]
    library_dirs: list[str]
    macros: list[tuple[str, str]]
    environ: dict[str, str]  # set where the user has not


def compiler_family(version_text: str) -> str:
    """Compiler family, "clang" or "gcc", from `$CXX --version` (Apple's `g++` is clang)."""
    return "clang" if "clang" in version_text.lower() else "gcc"


def builds(source: str, machine: str) -> bool:
    """Whether `source` is built for `machine`: ISA kernels only for their architecture."""
    name = os.path.basename(source)
    if name.endswith(("_neon.cpp", *FLAGS["arm"])):
        return machine in ARM64
    if name.endswith(tuple(FLAGS["x86"])):
        return machine in X86
    return True


def file_flags(source: str, machine: str, family: str) -> list[str]:
    """The flags of one file: its ISA's (first suffix that matches) and int8's exact floats."""
    name = os.path.basename(source)
    isa = FLAGS["x86"] if machine in X86 else FLAGS["arm"] if machine in ARM64 else {}
    flags = next((f for suffix, f in isa.items() if name.endswith(suffix)), [])
    flags = flags + (FLAGS["exact_float"] if "_int8" in name else [])
    return [f for f in flags if family == "gcc" or f not in FLAGS["gcc_only"]]


def libomp_prefix(
    machine: str, environ: Mapping[str, str], isdir: Callable[[str], bool] = os.path.isdir
) -> str | None:
    """Where Homebrew's libomp is for this Mac (LIBOMP_PREFIX first), or None."""
    candidates = [environ.get("LIBOMP_PREFIX", ""), HOMEBREW.get(machine, "")]
    return next((p for p in candidates if p and isdir(p)), None)


def build_config(system: str, machine: str, family: str, libomp: str | None = None) -> BuildConfig:
    """Flags for all files on `system` ("linux", "darwin") and `machine` with a compiler of
    `family`; `libomp` is the libomp prefix Apple clang links (libomp_prefix)."""
    compile_args = ["-O3", "-std=c++17", "-fno-math-errno", "-fno-wrapv", "-Wall"]
    # GCC 12 reports hundreds of -Wmaybe-uninitialized false positives inside its own
    # AVX-512 intrinsic headers; clang has no such warning and warns on the flag.
    if family == "gcc":
        compile_args.append("-Wno-maybe-uninitialized")
    macros = [] if machine in X86 + ARM64 else [("FASTSR_PORTABLE_ONLY", "1")]
    if system != "darwin" or family == "gcc":
        return BuildConfig([*compile_args, "-fopenmp"], ["-fopenmp"], [], [], macros, {})
    if libomp is None:
        raise ValueError("on macOS the C++ backend needs libomp: brew install libomp")
    # Apple clang has no -fopenmp driver flag: the preprocessor takes it and libomp links
    # explicitly. A universal2 Python compiles for both architectures by default, but each
    # kernel file is for one: build for this machine only.
    return BuildConfig(
        [*compile_args, "-Xpreprocessor", "-fopenmp"],
        ["-lomp"],
        [os.path.join(libomp, "include")],
        [os.path.join(libomp, "lib")],
        macros,
        {"ARCHFLAGS": f"-arch {machine}"},
    )
