"""Builds tests/cpp/kernel_check.cpp with the kernel layer of csrc/ for one target:
the native compiler, or a cross compiler whose binary runs under an emulator.

Objects are cached under build/kernel_check/<target>/, keyed by the compiler, flags,
source and every header, so reruns only link.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
DRIVER = ROOT / "tests" / "cpp" / "kernel_check.cpp"
FLAGS = ["-O3", "-std=c++17", "-fopenmp", "-fno-math-errno", "-Wall", "-Wno-maybe-uninitialized"]
# As setup.py: the ISA of each file's name, and the int8 kernels' exact float rounding.
COMPILE_FLAGS = json.loads((CSRC / "compile_flags.json").read_text())
X86_FLAGS, ARM_FLAGS = COMPILE_FLAGS["x86"], COMPILE_FLAGS["arm"]
INT8_FLAGS = COMPILE_FLAGS["exact_float"]


@dataclass(frozen=True)
class Target:
    name: str
    compiler: str
    arch: str  # "x86_64" or "aarch64"
    runner: tuple[str, ...] = ()  # emulator command prefix, empty for native

    def missing(self) -> str | None:
        """Why this target cannot be built and run here, or None."""
        for tool in (self.compiler, *self.runner[:1]):
            if shutil.which(tool) is None:
                return f"{tool} not found (Debian: apt-get install g++-aarch64-linux-gnu qemu-user)"
        return None


def sources(arch: str) -> list[Path]:
    chosen = []
    for path in sorted(CSRC.glob("*.cpp")):
        name = path.name
        if name.startswith("binding"):
            continue
        is_x86 = name.endswith(tuple(X86_FLAGS))
        is_arm = name.endswith(("_neon.cpp", *ARM_FLAGS))
        if (is_x86 and arch != "x86_64") or (is_arm and arch != "aarch64"):
            continue
        chosen.append(path)
    return [*chosen, DRIVER]


def _flags(source: Path, arch: str) -> list[str]:
    isa = X86_FLAGS if arch == "x86_64" else ARM_FLAGS
    extra = [f for suffix, f in isa.items() if source.name.endswith(suffix)]
    int8 = INT8_FLAGS if "_int8" in source.name else []
    return FLAGS + (extra[0] if extra else []) + int8


def build(target: Target, jobs: int = 2) -> Path:
    out_dir = ROOT / "build" / "kernel_check" / target.name
    out_dir.mkdir(parents=True, exist_ok=True)
    headers = b"".join(p.read_bytes() for p in sorted([*CSRC.glob("*.h"), *CSRC.glob("*.inc")]))

    def compile_one(source: Path) -> Path:
        flags = _flags(source, target.arch)
        key = hashlib.sha256(
            b"\0".join(
                [target.compiler.encode(), " ".join(flags).encode(), source.read_bytes(), headers]
            )
        ).hexdigest()[:16]
        obj = out_dir / f"{source.stem}-{key}.o"
        if not obj.exists():
            tmp = obj.with_suffix(".tmp.o")
            cmd = [target.compiler, *flags, "-I", str(CSRC), "-c", str(source), "-o", str(tmp)]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            tmp.rename(obj)
        return obj

    with ThreadPoolExecutor(jobs) as pool:
        objects = list(pool.map(compile_one, sources(target.arch)))
    binary = out_dir / "kernel_check"
    subprocess.run(
        [target.compiler, "-fopenmp", *map(str, objects), "-o", str(binary)],
        check=True,
        capture_output=True,
        text=True,
    )
    return binary
