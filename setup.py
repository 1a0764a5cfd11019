"""Builds the C++ CPU backend `fastsr._C`.

Sources named `*_avx512.cpp` / `*_avx2.cpp` are compiled with those ISA flags only; the
rest is compiled for the baseline ISA, and the extension picks the kernels at run time,
so one build runs on CPUs with and without AVX-512. `*_neon.cpp` is built on AArch64
(Linux and macOS), where Advanced SIMD is baseline, and `*_neon_dotprod.cpp` and
`*_bf16_neon.cpp` there with the dot-product and bf16 extensions (used only where the CPU
reports them); other CPUs get the portable path.
"""

import json
import os
import platform
import sys
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

MACHINE = platform.machine().lower()
IS_X86 = MACHINE in ("x86_64", "amd64")
IS_ARM64 = MACHINE in ("aarch64", "arm64")
IS_MACOS = sys.platform == "darwin"
# Per-file ISA flags and the int8 kernels' exact-float flags: data, shared with
# tests/kernel_check_build.py (csrc/compile_flags.json says why each is there).
COMPILE_FLAGS = json.loads((Path(__file__).parent / "csrc" / "compile_flags.json").read_text())
ISA_FLAGS = COMPILE_FLAGS["x86"]
NEON_ISA_FLAGS = COMPILE_FLAGS["arm"]
EXACT_FLOAT_FLAGS = COMPILE_FLAGS["exact_float"]


def _isa_flags(source: str) -> list[str]:
    for suffix, flags in {**ISA_FLAGS, **NEON_ISA_FLAGS}.items():
        if source.endswith(suffix):
            return flags
    return []


def _float_flags(source: str) -> list[str]:
    return EXACT_FLOAT_FLAGS if "_int8" in os.path.basename(source) else []


class BuildExt(build_ext):
    def build_extension(self, ext):
        original_compile = self.compiler._compile

        def compile_with_isa(obj, src, ext_, cc_args, extra_postargs, pp_opts):
            postargs = list(extra_postargs) + _isa_flags(src) + _float_flags(src)
            original_compile(obj, src, ext_, cc_args, postargs, pp_opts)

        self.compiler._compile = compile_with_isa
        try:
            super().build_extension(ext)
        except Exception as error:
            sys.stderr.write(
                "\nfastsr: building the C++ CPU backend (fastsr._C) failed.\n"
                "It needs a C++17 compiler (g++ or clang++) and the Python headers\n"
                "(Debian/Ubuntu: apt-get install g++ python3-dev).\n"
                f"Cause: {error}\n\n"
            )
            raise
        finally:
            self.compiler._compile = original_compile


def _for_this_cpu(source: str) -> bool:
    if source.endswith(("_neon.cpp", *NEON_ISA_FLAGS)):
        return IS_ARM64
    return IS_X86 if _isa_flags(source) else True


def _sources() -> list[str]:
    return [s for s in sorted(glob("csrc/**/*.cpp", recursive=True)) if _for_this_cpu(s)]


HEADERS = glob("csrc/**/*.h", recursive=True) + glob("csrc/**/*.inc", recursive=True)


def _needs_recompile(obj: str, src: str) -> bool:
    """Rebuild an object older than its source or than any header/include in csrc/."""
    if not os.path.exists(obj):
        return True
    return os.stat(obj).st_mtime < max(os.stat(dep).st_mtime for dep in [src, *HEADERS])


# Compile sources in parallel (FASTSR_BUILD_JOBS, default: all cores) and skip up-to-date
# objects: the SIMD kernels are template-heavy and slow to build.
ParallelCompile("FASTSR_BUILD_JOBS", default=0, needs_recompile=_needs_recompile).install()

# GCC 12 reports hundreds of -Wmaybe-uninitialized false positives inside its own AVX-512
# intrinsic headers; they drown real warnings.
# -fno-wrapv undoes the -fwrapv in Python's own CFLAGS: wrapping int arithmetic keeps
# GCC from vectorising loops that index with int.
compile_args = ["-O3", "-std=c++17", "-fno-math-errno", "-fno-wrapv", "-Wall"]
if IS_MACOS:
    compile_args += ["-Wno-unknown-pragmas"]
else:
    compile_args += ["-Wno-maybe-uninitialized"]
macros = [] if IS_X86 or IS_ARM64 else [("FASTSR_PORTABLE_ONLY", "1")]


def _openmp() -> tuple[list[str], list[str], list[str], list[str]]:
    """Compile args, link args, include and library dirs for OpenMP.

    Apple clang has no -fopenmp driver flag: it takes -Xpreprocessor -fopenmp and
    Homebrew's libomp (`brew install libomp`; LIBOMP_PREFIX overrides where it is).
    """
    if not IS_MACOS:
        return ["-fopenmp"], ["-fopenmp"], [], []
    candidates = [
        os.environ.get("LIBOMP_PREFIX", ""),
        "/opt/homebrew/opt/libomp",
        "/usr/local/opt/libomp",
    ]
    prefix = next((p for p in candidates if p and os.path.isdir(p)), None)
    if prefix is None:
        raise SystemExit("fastsr: on macOS the C++ backend needs libomp: brew install libomp")
    return (
        ["-Xpreprocessor", "-fopenmp"],
        ["-lomp"],
        [os.path.join(prefix, "include")],
        [os.path.join(prefix, "lib")],
    )


omp_compile, omp_link, omp_includes, omp_libs = _openmp()
compile_args += omp_compile
if os.environ.get("FASTSR_DEBUG_BUILD"):
    compile_args = [a if a != "-O3" else "-O0" for a in compile_args] + ["-g"]

setup(
    # Triton kernels live at the top level in kernels/ and install as fastsr.kernels.
    packages=find_packages(include=["fastsr", "fastsr.*"]) + ["fastsr.kernels"],
    package_dir={"fastsr.kernels": "kernels"},
    ext_modules=[
        Pybind11Extension(
            "fastsr._C",
            _sources(),
            include_dirs=["csrc", *omp_includes],
            library_dirs=omp_libs,
            depends=HEADERS,
            extra_compile_args=compile_args,
            extra_link_args=omp_link,
            define_macros=macros,
            cxx_std=17,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
