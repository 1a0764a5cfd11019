// bf16 direct convolution and the fp32 <-> bf16 steps, AVX512_BF16 build. The tile is the
// fp32 AVX-512 kernel's (P pixels x NV vectors of 16 fp32 accumulators); each vdpbf16ps
// adds the products of two input channels, so a tile does twice the fp32 kernel's work
// per instruction.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_bf16.h"

namespace fastsr {
namespace {

#include "ops_avx512.inc"
#include "microkernel.inc"
#include "conv2d_store.inc"

struct B16 : Bf16Tile<Bf16Isa::Avx512Bf16> {
  using Pair = __m512bh;  // 16 lanes of two bf16 each
  static Pair load_w(const uint16_t* p) { return (Pair)_mm512_loadu_si512(p); }
  static Pair broadcast_pair(const uint16_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return (Pair)_mm512_set1_epi32(v);
  }
  static Pair broadcast_single(const uint16_t* p) { return (Pair)_mm512_set1_epi32(*p); }
  static Reg dot(Reg acc, Pair x, Pair w) { return _mm512_dpbf16_ps(acc, x, w); }
  // Rounded to nearest, ties to even; the first n lanes stored.
  static void store_bf16(uint16_t* p, Reg v, int n) {
    _mm256_mask_storeu_epi16(p, Ops::first(n), (__m256i)_mm512_cvtneps_pbh(v));
  }
  static Reg load_bf16(const uint16_t* p, int n) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(Ops::first(n), p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
};

#include "conv2d_bf16_kernel.inc"

}  // namespace

extern const Bf16Kernels kAvx512Bf16Kernels = {run_conv_bf16, rows_to_bf16, rows_from_bf16};

}  // namespace fastsr
