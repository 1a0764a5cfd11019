// Int8 direct convolution, AVX-512 VNNI build (vpdpbusd; untested on the AVX2-only
// development machine).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_int8.h"

namespace fastsr {
namespace {

#include "ops_avx512.inc"
#include "microkernel.inc"

struct I8 : Int8Tile<Int8Isa::Avx512Vnni> {
  using Acc = __m512i;
  using X = __m512i;
  using W = __m512i;
  static Acc zero() { return _mm512_setzero_si512(); }
  static X broadcast4(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static W load_w(const int8_t* p) { return _mm512_loadu_si512(p); }
  static Acc dot(Acc acc, X x, W w) { return _mm512_dpbusd_epi32(acc, x, w); }
  static Acc load(const int32_t* p) { return _mm512_loadu_si512(p); }
  static Acc sub(Acc a, Acc b) { return _mm512_sub_epi32(a, b); }
  // The maskz form: GCC 12's plain one warns on its own _mm512_undefined_ps.
  static __m512 to_float(Acc a) { return _mm512_maskz_cvtepi32_ps(__mmask16(0xffff), a); }
  static Acc to_int(__m512 v) { return _mm512_cvtps_epi32(v); }  // nearest, ties to even
  static void store(int32_t* p, Acc a) { _mm512_storeu_si512(p, a); }
  // Lanes in [0, 255]: vpmovdb, to exactly n bytes.
  static void store_u8(uint8_t* p, Acc a, int n) {
    if (n == V) _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(a));
    else _mm512_mask_cvtepi32_storeu_epi8(p, __mmask16((1u << n) - 1), a);
  }
};

#include "conv2d_int8_kernel.inc"

}  // namespace

void conv2d_int8_avx512vnni(const Int8ConvJob& job) { run_conv_int8(job); }
void quantize_u8_avx512vnni(const QuantizeJob& job) { run_quantize_u8(job); }

}  // namespace fastsr
