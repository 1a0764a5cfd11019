#include "conv2d_bf16.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace fastsr {

bool bf16_supported() {
#ifdef FASTSR_HAS_X86_KERNELS
  __builtin_cpu_init();
  return active_simd() == Simd::Avx512 && __builtin_cpu_supports("avx512bf16");
#else
  return false;  // ARMv8.6 BFDOT would go here; no kernel is written for it yet
#endif
}

namespace {

constexpr int kLanes = 16, kMaxVectors = 4;  // the AVX-512 kernel's tile (kTileShapes)

// Round to nearest, ties to even, as vcvtneps2bf16 does for finite values.
uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace

Bf16ConvLayer pack_conv_bf16(const float* weight, const float* bias, const float* slope,
                             int cout, int cin, int kh, int kw, int stride, int dilation,
                             int pad_top, int pad_left, Act act, float alpha, int shuffle,
                             bool out_bf16) {
  if (!bf16_supported())
    throw std::invalid_argument("bf16 conv2d: this CPU (at the active SIMD level) has no bf16 "
                                "dot product (avx512_bf16)");
  Bf16ConvLayer B;
  ConvLayer& L = B.conv;
  L.cin = cin, L.cout = cout, L.kh = kh, L.kw = kw;
  L.stride = stride, L.dilation = dilation, L.pad_top = pad_top, L.pad_left = pad_left;
  L.simd = Simd::Avx512, L.lanes = kLanes;
  L.act = act, L.alpha = alpha, L.shuffle = shuffle;
  B.pairs = (cin + 1) / 2;
  B.out_bf16 = out_bf16;
  const int64_t taps = int64_t(kh) * kw * B.pairs;
  int64_t offset = 0;
  for (int first = 0; first < cout; first += kLanes * kMaxVectors) {
    const int n = std::min(kLanes * kMaxVectors, cout - first);
    const int nvec = (n + kLanes - 1) / kLanes;
    L.groups.push_back({first, n, nvec, offset});
    offset += taps * nvec * kLanes * 2;
  }
  B.packed.assign(size_t(offset), 0);
  for (const ConvGroup& g : L.groups) {
    const int width = g.nvec * kLanes;
    uint16_t* dst = B.packed.data() + g.offset;
    for (int ky = 0; ky < kh; ++ky)
      for (int kx = 0; kx < kw; ++kx)
        for (int q = 0; q < B.pairs; ++q, dst += 2 * width)
          for (int k = 0; k < g.count; ++k)
            for (int i = 0; i < 2 && 2 * q + i < cin; ++i) {
              const int co = g.first + k, ci = 2 * q + i;
              dst[2 * k + i] = to_bf16(weight[((int64_t(co) * cin + ci) * kh + ky) * kw + kx]);
            }
  }
  const size_t padded = size_t((cout + kLanes - 1) / kLanes * kLanes);
  L.bias = AlignedFloats(padded);
  if (bias) std::copy(bias, bias + cout, L.bias.data());
  if (slope) {
    L.slope = AlignedFloats(padded);
    std::copy(slope, slope + cout, L.slope.data());
  }
  return B;
}

#ifndef FASTSR_HAS_X86_KERNELS
// This build has no bf16 kernel, bf16_supported() is false and no bf16 step is ever made.
void conv2d_bf16(const Bf16ConvJob&) { std::abort(); }
void fp32_to_bf16(const View&, const Bf16View&) { std::abort(); }
void bf16_to_fp32(const Bf16View&, const View&) { std::abort(); }
#endif

}  // namespace fastsr
