"""setup.py's choice of files and flags (build_config.py) for each platform, checked here
without its hardware: which kernels build, their ISA flags, the GCC-only flags, OpenMP."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "build_config", Path(__file__).resolve().parent.parent / "build_config.py"
)
bc = sys.modules["build_config"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

NEON = ["conv2d_neon.cpp", "conv2d_int8_neon_dotprod.cpp", "conv2d_bf16_neon.cpp"]
X86 = ["conv2d_avx512.cpp", "conv2d_int8_avxvnni.cpp", "conv2d_bf16_amx.cpp"]
PLATFORMS = [("darwin", "arm64"), ("darwin", "x86_64"), ("linux", "aarch64"), ("linux", "x86_64")]


@pytest.mark.parametrize("system, machine", PLATFORMS)
def test_each_machine_builds_its_own_kernels_only(system, machine):
    arm = machine in ("arm64", "aarch64")
    assert all(bc.builds(f"csrc/{name}", machine) == arm for name in NEON)
    assert all(bc.builds(f"csrc/{name}", machine) != arm for name in X86)
    assert bc.builds("csrc/program.cpp", machine)


def test_isa_flags_by_first_matching_suffix():
    assert bc.file_flags("csrc/conv2d_int8_neon_dotprod.cpp", "arm64", "clang") == [
        "-march=armv8.2-a+dotprod",
        "-ffp-contract=off",
    ]
    assert "-mamx-bf16" in bc.file_flags("csrc/conv2d_bf16_amx.cpp", "x86_64", "gcc")
    assert bc.file_flags("csrc/program.cpp", "x86_64", "gcc") == []


@pytest.mark.parametrize("source", ["conv2d_int8_neon.cpp", "conv2d_bf16_neon.cpp"])
def test_gcc_only_flags_go_to_gcc_only(source):
    assert "-fno-schedule-insns" in bc.file_flags(source, "aarch64", "gcc")
    assert "-fno-schedule-insns" not in bc.file_flags(source, "arm64", "clang")


@pytest.mark.parametrize("system, machine", PLATFORMS)
@pytest.mark.parametrize("family", ["gcc", "clang"])
def test_openmp_and_warning_flags(system, machine, family):
    config = bc.build_config(system, machine, family, libomp="/opt/libomp")
    apple = system == "darwin" and family == "clang"
    assert ("-Wno-maybe-uninitialized" in config.compile_args) == (family == "gcc")
    if apple:  # Apple clang: no -fopenmp driver flag; Homebrew's libomp; one architecture
        assert config.compile_args[-2:] == ["-Xpreprocessor", "-fopenmp"]
        assert config.link_args == ["-lomp"]
        assert config.include_dirs == ["/opt/libomp/include"]
        assert config.library_dirs == ["/opt/libomp/lib"]
        assert config.environ == {"ARCHFLAGS": f"-arch {machine}"}
    else:
        assert config.compile_args[-1] == "-fopenmp" and config.link_args == ["-fopenmp"]
        assert config.include_dirs == config.library_dirs == [] and config.environ == {}
    assert config.macros == []


def test_other_cpus_build_the_portable_path():
    assert bc.build_config("linux", "riscv64", "gcc").macros == [("FASTSR_PORTABLE_ONLY", "1")]


def test_apple_clang_without_libomp_says_what_to_install():
    with pytest.raises(ValueError, match="brew install libomp"):
        bc.build_config("darwin", "arm64", "clang")


@pytest.mark.parametrize(
    "machine, found", [("arm64", "/opt/homebrew/opt/libomp"), ("x86_64", "/usr/local/opt/libomp")]
)
def test_libomp_from_the_homebrew_of_this_machine(machine, found):
    both = {"/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"}
    assert bc.libomp_prefix(machine, {}, both.__contains__) == found
    assert bc.libomp_prefix(machine, {"LIBOMP_PREFIX": "/x"}, {"/x"}.__contains__) == "/x"
    assert bc.libomp_prefix(machine, {}, lambda p: False) is None


@pytest.mark.parametrize(
    "text, family",
    [
        ("Apple clang version 15.0.0 (clang-1500.3.9.4)", "clang"),
        ("Debian clang version 19.1.7", "clang"),
        ("g++ (Debian 12.2.0-14) 12.2.0", "gcc"),
    ],
)
def test_compiler_family_from_version_text(text, family):
    assert bc.compiler_family(text) == family
