// bf16 direct convolution and the fp32 <-> bf16 steps, AVX512_BF16 build. The tile is the
// fp32 AVX-512 kernel's (P pixels x NV vectors of 16 fp32 accumulators); each vdpbf16ps
// adds the products of two input channels, so a tile does twice the fp32 kernel's work
// per instruction. An fp32 output goes through the fp32 kernel's own store_tile.
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

using Pair = __m512bh;  // 16 lanes of two bf16 each

inline Pair broadcast_pair(const uint16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return (Pair)_mm512_set1_epi32(v);
}

// The last channel of an odd count, paired with +0: reads nothing past the view.
inline Pair broadcast_single(const uint16_t* p) { return (Pair)_mm512_set1_epi32(*p); }

template <int P, int NV, bool Single>
[[gnu::always_inline]] inline void dot_channels(Reg (&acc)[P][NV], const uint16_t* x,
                                                int64_t step, const uint16_t* w) {
  Pair wv[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) wv[j] = (Pair)_mm512_loadu_si512(w + j * V * 2);
#pragma GCC unroll 12
  for (int p = 0; p < P; ++p) {
    const Pair xv = Single ? broadcast_single(x + p * step) : broadcast_pair(x + p * step);
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[p][j] = _mm512_dpbf16_ps(acc[p][j], xv, wv[j]);
  }
}

// Out of line for the reason microkernel.inc's accumulate is.
template <int P, int NV>
[[gnu::noinline]] void accumulate_bf16(int kh, int kw, int cin, const uint16_t* in,
                                       int64_t step, int64_t dy, int64_t dx, const uint16_t* w,
                                       Reg (&result)[P][NV]) {
  Reg acc[P][NV];
#pragma GCC unroll 12
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[p][j] = Ops::zero();
  const int pairs = cin / 2;
  for (int ky = 0; ky < kh; ++ky) {
    for (int kx = 0; kx < kw; ++kx) {
      const uint16_t* tap = in + ky * dy + kx * dx;
      for (int q = 0; q < pairs; ++q, w += NV * V * 2)
        dot_channels<P, NV, false>(acc, tap + 2 * q, step, w);
      if (cin & 1) {
        dot_channels<P, NV, true>(acc, tap + 2 * pairs, step, w);
        w += NV * V * 2;
      }
    }
  }
#pragma GCC unroll 12
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) result[p][j] = acc[p][j];
}

inline __m256i to_bf16(Reg v) { return (__m256i)_mm512_cvtneps_pbh(v); }  // nearest, ties even

// store_tile's epilogue (bias, activation, skip), then rounded to bf16.
template <int P, int NV>
void store_bf16_tile(const Bf16ConvJob& job, const ConvGroup& g, const Reg (&acc)[P][NV], int b,
                     int oh, int ow0) {
  const ConvJob& e = job.epilogue;
  const ConvLayer& L = *e.layer;
  const int r = L.shuffle;
  uint16_t* out = job.out.at(b, oh * r, ow0 * r);
  const int64_t out_step = r * job.out.pix;
  const float* skip = e.skip ? e.skip->at(b, oh * r, ow0 * r) : nullptr;
  const int64_t skip_step = e.skip ? r * e.skip->pix : 0;
  const Reg alpha = Ops::set1(L.alpha);
  for (int j = 0; j < NV; ++j) {
    const int c0 = g.first + j * V;
    const int valid = std::min(V, g.first + g.count - c0);
    const Reg bias = Ops::load(L.bias.data() + c0);
    const Reg slope = L.act == Act::Prelu ? Ops::load(L.slope.data() + c0) : Ops::zero();
    for (int p = 0; p < P; ++p) {
      Reg v = activate(Ops::add(acc[p][j], bias), L.act, slope, alpha);
      const float* skip_p = skip ? skip + p * skip_step : nullptr;
      uint16_t* o = out + p * out_step;
      if (e.contiguous_store) {
        if (skip_p) v = Ops::add(v, Ops::load_partial(skip_p + c0, valid));
        _mm256_mask_storeu_epi16(o + c0, Ops::first(valid), to_bf16(v));
      } else {
        alignas(64) float lanes[V];
        Ops::store(lanes, v);
        if (skip_p)
          for (int k = 0; k < valid; ++k) lanes[k] += skip_p[e.skip_offsets[c0 + k]];
        alignas(32) uint16_t rounded[V];
        _mm256_store_si256(reinterpret_cast<__m256i*>(rounded), to_bf16(Ops::load(lanes)));
        for (int k = 0; k < valid; ++k) o[e.out_offsets[c0 + k]] = rounded[k];
      }
    }
  }
}

template <int P, int NV>
void conv_bf16_tile(const Bf16ConvJob& job, const ConvGroup& g, int b, int oh, int ow0) {
  const Bf16ConvLayer& B = *job.layer;
  const ConvLayer& L = B.conv;
  const Bf16View& x = job.x;
  const uint16_t* in = x.at(b, oh * L.stride - L.pad_top, ow0 * L.stride - L.pad_left);
  Reg acc[P][NV];
  accumulate_bf16<P, NV>(L.kh, L.kw, L.cin, in, L.stride * x.pix, L.dilation * x.row,
                         L.dilation * x.pix, B.packed.data() + g.offset, acc);
  if (B.out_bf16)
    store_bf16_tile<P, NV>(job, g, acc, b, oh, ow0);
  else
    store_tile<P, NV>(job.epilogue, g, acc, b, oh, ow0);
}

using Bf16TileFn = void (*)(const Bf16ConvJob&, const ConvGroup&, int, int, int);
constexpr int kMaxPixels = Ops::pixels(1);  // the widest tile (kTileShapes)

template <int NV, int... Ps>
constexpr std::array<Bf16TileFn, sizeof...(Ps)> bf16_tiles_for(std::integer_sequence<int, Ps...>) {
  return {&conv_bf16_tile<Ps + 1, NV>...};
}

template <int... NVs>
constexpr std::array<std::array<Bf16TileFn, kMaxPixels>, sizeof...(NVs)> bf16_tile_table(
    std::integer_sequence<int, NVs...>) {
  return {bf16_tiles_for<NVs + 1>(std::make_integer_sequence<int, kMaxPixels>())...};
}

// kBf16Tiles[nv - 1][p - 1] computes a tile of p pixels x nv vectors.
constexpr auto kBf16Tiles = bf16_tile_table(std::make_integer_sequence<int, Ops::max_vectors>());

// A row of `count` elements at a time when both views are dense along it, else a pixel.
template <class In, class Out, class Convert>
void convert_rows(const NhwcView<In>& x, const NhwcView<Out>& out, Convert convert) {
  const bool flat = x.pix == x.c && out.pix == out.c;
  const int rows = x.n * x.h;
#pragma omp for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const int b = r / x.h, y = r % x.h;
    if (flat) {
      convert(x.at(b, y, 0), out.at(b, y, 0), int64_t(x.w) * x.c);
    } else {
      for (int i = 0; i < x.w; ++i) convert(x.at(b, y, i), out.at(b, y, i), x.c);
    }
  }
}

}  // namespace

void conv2d_bf16(const Bf16ConvJob& job) {
  const ConvJob& e = job.epilogue;
  const int rows = job.x.n * e.oh;
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int b = row / e.oh, oh = row % e.oh;
    for (const ConvGroup& g : job.layer->conv.groups) {
      const int P = Ops::pixels(g.nvec);
      const auto& fns = kBf16Tiles[size_t(g.nvec - 1)];
      int ow0 = 0;
      for (; ow0 + P <= e.ow; ow0 += P) fns[size_t(P - 1)](job, g, b, oh, ow0);
      if (ow0 < e.ow) fns[size_t(e.ow - ow0 - 1)](job, g, b, oh, ow0);
    }
  }
}

void fp32_to_bf16(const View& x, const Bf16View& out) {
  convert_rows(x, out, [](const float* s, uint16_t* d, int64_t count) {
    for (int64_t i = 0; i < count; i += V) {
      const __mmask16 m = Ops::first(int(std::min<int64_t>(V, count - i)));
      _mm256_mask_storeu_epi16(d + i, m, to_bf16(_mm512_maskz_loadu_ps(m, s + i)));
    }
  });
}

void bf16_to_fp32(const Bf16View& x, const View& out) {
  convert_rows(x, out, [](const uint16_t* s, float* d, int64_t count) {
    for (int64_t i = 0; i < count; i += V) {
      const __mmask16 m = Ops::first(int(std::min<int64_t>(V, count - i)));
      const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + i));
      _mm512_mask_storeu_ps(d + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
    }
  });
}

}  // namespace fastsr
