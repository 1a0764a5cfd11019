"""The path a user calls with a numpy image and a shipped model never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "onnx", "fastsr.models", "fastsr.graph.from_torch", "triton")


def _imported_after(code: str, env: dict | None = None) -> list[str]:
    script = f"""
import sys

import pytest
{code}
print(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} or m in {HEAVY!r}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1])


def test_import_fastsr_imports_no_torch():
    assert _imported_after("import fastsr") == []


def test_upscaling_a_numpy_image_with_shipped_models_imports_no_torch():
    code = """
import numpy as np
import fastsr
image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
for model in ("fast", "quality_x4"):
    out = fastsr.upscale(image, model=model)
    assert out.dtype == np.uint8 and out.shape[2] == 3 and out.shape[0] > 20, out.shape
up = fastsr.Upscaler(model="fast", threads=1)
assert up(image[..., 0]).ndim == 2
"""
    assert _imported_after(code) == []


def test_info_imports_no_torch_where_no_gpu_driver_is_present():
    from fastsr.backends import gpu_driver_present

    if gpu_driver_present():
        pytest.skip("a GPU driver is present, so `fastsr info` asks torch for the CUDA device")
    code = "from fastsr.cli import main\nassert main(['info']) == 0"
    without_interpreter = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    assert _imported_after(code, without_interpreter) == []


def test_a_missing_package_makes_a_backend_unavailable_without_importing_it(monkeypatch):
    import importlib.util

    from fastsr import backends

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "triton" else real_find_spec(name)
    )
    assert backends.availability("triton") == "triton not installed"
    assert backends.availability("reference") is None
