"""Builds tests/cpp/kernel_check.cpp with the kernel layer of csrc/ for one target:
the native compiler, or a cross compiler whose binary runs under an emulator.

Objects are cached under build/kernel_check/<target>/, keyed by the compiler, flags,
source and every header, so reruns only link.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
DRIVER = ROOT / "tests" / "cpp" / "kernel_check.cpp"
# As setup.py: which files, and each file's flags, by the build_config of its root.
_spec = importlib.util.spec_from_file_location("build_config", ROOT / "build_config.py")
build_config = sys.modules["build_config"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_config)
# LLVM's libomp for AArch64, which clang's OpenMP code calls (GCC's libgomp has no __kmpc_*
# entry points): Debian's libomp5-19:arm64, unpacked by .ci/aarch64_libomp.sh.
AARCH64_LIBOMP = Path(
    os.environ.get("FASTSR_AARCH64_LIBOMP", ROOT / "build" / "aarch64-libomp" / "libomp.so.5")
)


@dataclass(frozen=True)
class Target:
    name: str
    compiler: tuple[str, ...]  # command and its target options
    arch: str  # "x86_64" or "aarch64"
    runner: tuple[str, ...] = ()  # emulator command prefix, empty for native
    family: str = "gcc"  # or "clang"
    install: str = "apt-get install g++-aarch64-linux-gnu qemu-user"  # what provides it

    def link_flags(self) -> list[str]:
        # clang's -fopenmp would link -lomp from its own (x86) library folder
        if self.family == "clang" and self.arch == "aarch64":
            return [str(AARCH64_LIBOMP), f"-Wl,-rpath,{AARCH64_LIBOMP.parent}"]
        return ["-fopenmp"]

    def missing(self) -> str | None:
        """Why this target cannot be built and run here, or None."""
        for tool in (self.compiler[0], *self.runner[:1]):
            if shutil.which(tool) is None:
                return f"{tool} not found (Debian: {self.install})"
        if self.family == "clang" and self.arch == "aarch64" and not AARCH64_LIBOMP.exists():
            return f"no AArch64 libomp at {AARCH64_LIBOMP} (bash .ci/aarch64_libomp.sh)"
        return None


def sources(arch: str) -> list[Path]:
    kernels = [p for p in sorted(CSRC.glob("*.cpp")) if not p.name.startswith("binding")]
    return [*(p for p in kernels if build_config.builds(str(p), arch)), DRIVER]


def flags(target: Target, source: Path, extra: tuple[str, ...] = ()) -> list[str]:
    base = build_config.build_config("linux", target.arch, target.family).compile_args
    return [*base, *extra, *build_config.file_flags(str(source), target.arch, target.family)]


def compile_objects(
    target: Target, files: list[Path], out_dir: Path, extra: tuple[str, ...] = (), jobs: int = 2
) -> list[Path]:
    """Compiles `files` (cached by compiler, flags, source and headers); under clang a
    warning fails like an error (GCC 12 warns inside its own AVX-512 headers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    headers = b"".join(p.read_bytes() for p in sorted([*CSRC.glob("*.h"), *CSRC.glob("*.inc")]))

    def compile_one(source: Path) -> Path:
        options = flags(target, source, extra)
        key = hashlib.sha256(
            b"\0".join(
                [
                    " ".join(target.compiler).encode(),
                    " ".join(options).encode(),
                    source.read_bytes(),
                    headers,
                ]
            )
        ).hexdigest()[:16]
        obj = out_dir / f"{source.stem}-{key}.o"
        if not obj.exists():
            tmp = obj.with_suffix(".tmp.o")
            cmd = [*target.compiler, *options, "-I", str(CSRC), "-c", str(source), "-o", str(tmp)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0 or (target.family == "clang" and done.stderr):
                raise RuntimeError(f"{' '.join(cmd)}\n{done.stderr}")
            tmp.rename(obj)
        return obj

    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(compile_one, files))


def build(target: Target, jobs: int = 2) -> Path:
    out_dir = ROOT / "build" / "kernel_check" / target.name
    objects = compile_objects(target, sources(target.arch), out_dir, jobs=jobs)
    binary = out_dir / "kernel_check"
    subprocess.run(
        [
            *target.compiler,
            *map(str, objects),
            *target.link_flags(),
            "-o",
            str(binary),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return binary
