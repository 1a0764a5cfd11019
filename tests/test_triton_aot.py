"""Every Triton kernel, in its default GPU config, lowered ahead of time for sm_80 and sm_90.

No GPU is needed: `triton.compile` runs the whole pipeline to a cubin with the ptxas
that ships in the triton wheel, and `cuobjdump --dump-resource-usage` (also shipped)
reads registers, stack (spill) bytes and shared memory from it. A case fails on a
compile error, on more registers than its warps can have (65536 / threads, capped at
255), and on spills unless SPILLS_ALLOWED says why that config is still right.

The kernels are compiled in a child process: under TRITON_INTERPRET=1 (set for the
interpreter tests) `triton.jit` yields interpreter functions that cannot be lowered.
Run with -s to see the table; docs/gpu-roofline.md keeps the last one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
from fastsr.kernels import conv2d, conv_transpose2d, elementwise, pool, resize  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

ARCHS = (80, 90)
CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
SPILLS_ALLOWED: dict[str, str] = {  # case -> why its default config may spill
    "conv2d 24->24 3x3 masked-K fp16": "sm_80: ptxas fully unrolls the 9-step K loop and "
    "keeps one value on the stack: one store and one load per program, no loop left",
}


def _conv(module, dtype: str, x_dtype: str, out_dtype: str, **layer):
    """A conv case: pointer types and constexprs, tiles fitted as the GPU launch does."""
    constexprs = {
        "ACTIVATION": "none",
        "SHUFFLE": 1,
        "SKIP": "none",
        "SKIP_FACTOR": 1,
        "GATE": "none",
        "DOT_DTYPE": getattr(tl, {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[dtype]),
        **layer,
    }
    (config,) = module._fit(module.CONFIGS["gpu"][:1], constexprs)
    pointers = {
        "x_ptr": x_dtype,
        "w_ptr": dtype,
        "bias_ptr": "fp32",
        "slope_ptr": "fp32",
        "skip_ptr": "fp32",
        "out_ptr": out_dtype,
    }
    return pointers, {**constexprs, **config}


BODY = dict(
    CIN=64, COUT=64, KH=3, KW=3, STRIDE=1, PAD_H=1, PAD_W=1, DIL_H=1, DIL_W=1, GATHER_TAPS=False
)
# name -> (kernel, pointer element types, constexprs incl. tiles and launch options)
CASES = {
    "conv2d body 64->64 3x3 prelu fp16": (
        conv2d.conv2d_kernel,
        *_conv(conv2d, "fp16", "fp16", "fp16", **BODY, ACTIVATION="prelu"),
    ),
    "conv2d body 64->64 3x3 +skip fp32": (
        conv2d.conv2d_kernel,
        *_conv(conv2d, "fp32", "fp32", "fp32", **BODY, SKIP="same"),
    ),
    "conv2d body 64->64 3x3 relu bf16": (
        conv2d.conv2d_kernel,
        *_conv(conv2d, "bf16", "bf16", "bf16", **BODY, ACTIVATION="relu"),
    ),
    "conv2d 24->24 3x3 masked-K fp16": (
        conv2d.conv2d_kernel,
        *_conv(conv2d, "fp16", "fp16", "fp16", **dict(BODY, CIN=24, COUT=24), ACTIVATION="relu"),
    ),
    "conv2d head 3->64 3x3 gather-K fp16": (
        conv2d.conv2d_kernel,
        *_conv(
            conv2d, "fp16", "fp32", "fp16", **dict(BODY, CIN=3, GATHER_TAPS=True), ACTIVATION="relu"
        ),
    ),
    "conv2d tail 64->12 shuffle2 bicubic fp16": (
        conv2d.conv2d_kernel,
        *_conv(
            conv2d,
            "fp16",
            "fp16",
            "fp32",
            **dict(BODY, COUT=12),
            SHUFFLE=2,
            SKIP="bicubic",
            SKIP_FACTOR=2,
        ),
    ),
    "conv_transpose2d 64->64 6x6/2 prelu fp16": (
        conv_transpose2d.conv_transpose2d_kernel,
        *_conv(
            conv_transpose2d,
            "fp16",
            "fp16",
            "fp16",
            CIN=64,
            COUT=64,
            KH=6,
            KW=6,
            STRIDE=2,
            PAD_H=2,
            PAD_W=2,
            ACTIVATION="prelu",
        ),
    ),
    "resize bicubic x2 3ch": (
        resize.resize_kernel,
        {"src_ptr": "fp32", "out_ptr": "fp32"},
        dict(
            CHANNELS=3,
            FACTOR=2,
            MODE="bicubic",
            BLOCK_SIZE=resize.BLOCK["gpu"],
            num_warps=resize.NUM_WARPS,
        ),
    ),
    "global avg pool 64ch": (
        pool.channel_sum_kernel,
        {"x_ptr": "fp16", "out_ptr": "fp32"},
        dict(CHANNELS=64, **pool.POOL["gpu"]),
    ),
    "scale channels 64ch": (
        pool.scale_channels_kernel,
        {"x_ptr": "fp16", "gate_ptr": "fp16", "skip_ptr": "fp16", "out_ptr": "fp16"},
        dict(CHANNELS=64, GATES=64, SKIP=True, BLOCK_SIZE=pool.SCALE_BLOCK["gpu"], num_warps=4),
    ),
    "add fp16": (
        elementwise.binary_kernel,
        {"a_ptr": "fp16", "b_ptr": "fp16", "out_ptr": "fp16"},
        dict(OP="add", BLOCK_SIZE=elementwise.BLOCK["gpu"], num_warps=elementwise.NUM_WARPS),
    ),
    "affine + prelu 64ch fp16": (
        elementwise.affine_activation_kernel,
        {
            "x_ptr": "fp16",
            "scale_ptr": "fp32",
            "shift_ptr": "fp32",
            "slope_ptr": "fp32",
            "out_ptr": "fp16",
        },
        dict(
            CHANNELS=64,
            AFFINE=True,
            ACTIVATION="prelu",
            BLOCK_SIZE=elementwise.BLOCK["gpu"],
            num_warps=elementwise.NUM_WARPS,
        ),
    ),
    "pixel shuffle x2 3ch": (
        elementwise.pixel_shuffle_kernel,
        {"x_ptr": "fp32", "out_ptr": "fp32"},
        dict(
            CHANNELS=3,
            FACTOR=2,
            BLOCK_SIZE=elementwise.BLOCK["gpu"],
            num_warps=elementwise.NUM_WARPS,
        ),
    ),
    "pixel unshuffle x2 3ch": (
        elementwise.pixel_unshuffle_kernel,
        {"x_ptr": "fp32", "out_ptr": "fp32"},
        dict(
            CHANNELS=3,
            FACTOR=2,
            BLOCK_SIZE=elementwise.BLOCK["gpu"],
            num_warps=elementwise.NUM_WARPS,
        ),
    ),
    "concat copy 64ch into 128": (
        elementwise.copy_channels_kernel,
        {"x_ptr": "fp16", "out_ptr": "fp16"},
        dict(
            CHANNELS=64,
            OUT_CHANNELS=128,
            BLOCK_SIZE=elementwise.BLOCK["gpu"],
            num_warps=elementwise.NUM_WARPS,
        ),
    ),
}
FLOAT_ARGS = {"alpha", "gate_scale", "gate_shift", "multiplier", "low", "high"}
LAUNCH_OPTIONS = ("num_warps", "num_stages")


def _compile(kernel, pointers: dict, constexprs: dict, arch: int):
    options = {k: constexprs[k] for k in LAUNCH_OPTIONS if k in constexprs}
    constants = {k: v for k, v in constexprs.items() if k not in LAUNCH_OPTIONS}
    signature, attrs = {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in constants:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = "*" + pointers[name]
            attrs[(i,)] = [["tt.divisibility", 16]]  # torch allocations are 16-byte aligned
        else:
            signature[name] = "fp32" if name in FLOAT_ARGS else "i32"
    source = triton.compiler.ASTSource(
        fn=kernel, signature=signature, constexprs=constants, attrs=attrs
    )
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)


def _resource_usage(cubin: bytes) -> dict[str, int]:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        text = subprocess.run(
            [str(CUOBJDUMP), "--dump-resource-usage", file.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return {key: int(value) for key, value in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}


def compile_all() -> dict[str, dict]:
    """'case @ sm_XX' -> resource usage, or {"error": message}."""
    results = {}
    for case, (kernel, pointers, constexprs) in CASES.items():
        for arch in ARCHS:
            try:
                compiled = _compile(kernel, pointers, constexprs, arch)
                results[f"{case} @ sm_{arch}"] = dict(
                    _resource_usage(compiled.asm["cubin"]),
                    warps=compiled.metadata.num_warps,
                    stages=compiled.metadata.num_stages,
                    shared_bytes=compiled.metadata.shared,
                )
            except Exception as error:  # reported per case by the test below
                results[f"{case} @ sm_{arch}"] = {"error": f"{type(error).__name__}: {error}"}
    return results


@pytest.fixture(scope="module")
def usage() -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    child = subprocess.run(
        [sys.executable, __file__],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    results = json.loads(child.stdout.splitlines()[-1])
    print("\n| kernel (default config) | arch | warps | stages | regs | spill bytes | smem |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, r in results.items():
        if "error" not in r:
            case, arch = key.split(" @ ")
            print(
                f"| {case} | {arch} | {r['warps']} | {r['stages']} | {r['REG']} | "
                f"{r['STACK'] + r['LOCAL']} | {r['shared_bytes']} |"
            )
    return results


@pytest.mark.parametrize("arch", ARCHS, ids=[f"sm_{a}" for a in ARCHS])
@pytest.mark.parametrize("case", list(CASES))
def test_default_config_compiles_without_spills(case, arch, usage):
    result = usage[f"{case} @ sm_{arch}"]
    assert "error" not in result, result.get("error")
    assert result["REG"] <= min(255, 65536 // (32 * result["warps"]))
    if case not in SPILLS_ALLOWED:
        assert result["STACK"] == 0 and result["LOCAL"] == 0, f"{case} spills on sm_{arch}"


if __name__ == "__main__":
    print(json.dumps(compile_all()))
