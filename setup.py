"""Builds the C++ CPU backend `fastsr._C`.

Sources named `*_avx512.cpp` / `*_avx2.cpp` are compiled with those ISA flags only; the
rest is compiled for the baseline ISA, and the extension picks the kernels at run time,
so one build runs on CPUs with and without AVX-512. `*_neon.cpp` is built on AArch64
(Linux and macOS), where Advanced SIMD is baseline, and `*_neon_dotprod.cpp` and
`*_bf16_neon.cpp` there with the dot-product and bf16 extensions (used only where the CPU
reports them); other CPUs get the portable path.
"""

import os
import platform
import subprocess
import sys
import sysconfig
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, str(Path(__file__).parent))
from build_config import build_config, builds, compiler_family, file_flags, libomp_prefix  # noqa: E402

SYSTEM = sys.platform
MACHINE = platform.machine().lower()


def _compiler_family() -> str:
    compiler = os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++"
    try:
        version = subprocess.run(
            [*compiler.split(), "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except OSError:
        version = ""
    return compiler_family(version)


FAMILY = _compiler_family()


class BuildExt(build_ext):
    def build_extension(self, ext):
        original_compile = self.compiler._compile

        def compile_with_isa(obj, src, ext_, cc_args, extra_postargs, pp_opts):
            postargs = list(extra_postargs) + file_flags(src, MACHINE, FAMILY)
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


def _sources() -> list[str]:
    return [s for s in sorted(glob("csrc/**/*.cpp", recursive=True)) if builds(s, MACHINE)]


HEADERS = glob("csrc/**/*.h", recursive=True) + glob("csrc/**/*.inc", recursive=True)


def _needs_recompile(obj: str, src: str) -> bool:
    """Rebuild an object older than its source or than any header/include in csrc/."""
    if not os.path.exists(obj):
        return True
    return os.stat(obj).st_mtime < max(os.stat(dep).st_mtime for dep in [src, *HEADERS])


# Compile sources in parallel (FASTSR_BUILD_JOBS, default: all cores) and skip up-to-date
# objects: the SIMD kernels are template-heavy and slow to build.
ParallelCompile("FASTSR_BUILD_JOBS", default=0, needs_recompile=_needs_recompile).install()

libomp = libomp_prefix(MACHINE, os.environ) if SYSTEM == "darwin" else None
if SYSTEM == "darwin" and FAMILY == "clang" and libomp is None:
    raise SystemExit("fastsr: on macOS the C++ backend needs libomp: brew install libomp")
config = build_config(SYSTEM, MACHINE, FAMILY, libomp)
for name, value in config.environ.items():
    os.environ.setdefault(name, value)
compile_args = config.compile_args
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
            include_dirs=["csrc", *config.include_dirs],
            library_dirs=config.library_dirs,
            depends=HEADERS,
            extra_compile_args=compile_args,
            extra_link_args=config.link_args,
            define_macros=config.macros,
            cxx_std=17,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
