"""The C++ extension builds, imports and computes: one function checked against numpy."""

import numpy as np

from fastsr import _C


def test_global_avg_pool_matches_numpy_mean():
    x = np.random.default_rng(0).random((2, 5, 7, 3), dtype=np.float32)
    got = _C.global_avg_pool(x)
    np.testing.assert_allclose(got, x.mean(axis=(1, 2), keepdims=True), rtol=1e-6, atol=1e-7)


def test_reports_a_simd_level_and_threads():
    assert _C.simd_level() in ("portable", "avx2", "avx512", "neon")
    assert _C.max_threads() >= 1
