#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "conv2d.h"

namespace fastsr {
namespace {

struct Ops {
  static constexpr int V = 8;
  static constexpr int max_vectors = kernel_shape(Simd::Avx2).max_vectors;
  // 16 ymm registers: pixels x vectors accumulators + the weight vectors + a broadcast.
  static constexpr int pixels(int nv) { return nv >= 2 ? 6 : 12; }
  using Reg = __m256;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static __m256i first(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Reg load_partial(const float* p, int n) {
    return n == V ? load(p) : _mm256_maskload_ps(p, first(n));
  }
  static void store_partial(float* p, Reg v, int n) {
    if (n == V) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, first(n), v);
  }
};

#include "conv2d_kernel.inc"

}  // namespace

void conv2d_avx2(const ConvJob& job) { run_conv(job); }

}  // namespace fastsr
