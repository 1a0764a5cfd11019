#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "conv2d.h"

namespace fastsr {
namespace {

struct Ops {
  static constexpr int V = 16;
  static constexpr int max_vectors = kernel_shape(Simd::Avx512).max_vectors;
  // 32 zmm registers: pixels x vectors accumulators + the weight vectors.
  static constexpr int pixels(int nv) { return nv >= 4 ? 6 : nv == 3 ? 8 : 12; }
  using Reg = __m512;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static __mmask16 first(int n) { return __mmask16((1u << n) - 1u); }
  static Reg load_partial(const float* p, int n) {
    return n == V ? load(p) : _mm512_maskz_loadu_ps(first(n), p);
  }
  static void store_partial(float* p, Reg v, int n) {
    if (n == V) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, first(n), v);
  }
};

#include "conv2d_kernel.inc"

}  // namespace

void conv2d_avx512(const ConvJob& job) { run_conv(job); }

}  // namespace fastsr
