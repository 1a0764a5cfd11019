// bf16 direct convolution on CPUs with native bf16 dot products (AVX512_BF16 vdpbf16ps):
// bf16 activations x bf16 weights, two input channels per fp32 lane, fp32 accumulation,
// and the fp32 kernel's epilogue:
//   y = act(acc + bias) ; pixel-shuffle ; y += skip
// stored as fp32 or rounded (to nearest, ties to even) to bf16 for the next bf16 layer.
//
// There is no emulated fallback: without the instruction a bf16 product costs more than
// an fp32 one, so elsewhere bf16 is simply not offered (bf16_supported()).
#pragma once
#include <cstdint>
#include <vector>

#include "conv2d.h"

namespace fastsr {

using Bf16View = NhwcView<uint16_t>;  // bf16 bit patterns (view.h)

// AVX-512 is the active SIMD level (FASTSR_SIMD may cap it) and cpuid reports avx512_bf16.
bool bf16_supported();

struct Bf16ConvLayer {
  // Geometry, bias, slope, activation and shuffle as the fp32 epilogue reads them
  // (conv.packed stays empty); groups of up to 4 vectors of 16 output channels.
  ConvLayer conv;
  int pairs = 0;  // input channels rounded up to even, halved
  std::vector<uint16_t> packed;  // per group [ky][kx][pairs][nvec * 16][2], zero past cin
  bool out_bf16 = false;
};

// weight: OIHW float32 (rounded to bf16 here); bias: cout floats or null; slope: cout
// floats for PReLU or null. Throws std::invalid_argument when bf16_supported() is false.
Bf16ConvLayer pack_conv_bf16(const float* weight, const float* bias, const float* slope,
                             int cout, int cin, int kh, int kw, int stride, int dilation,
                             int pad_top, int pad_left, Act act, float alpha, int shuffle,
                             bool out_bf16);

struct Bf16ConvJob {
  const Bf16ConvLayer* layer;
  Bf16View x;
  ConvJob epilogue;  // the fp32 output (layer->out_bf16 false), skip and shuffle offsets
  Bf16View out;      // bf16 output (layer->out_bf16 true)
};

// Called inside an OpenMP parallel region (conv2d_bf16_avx512bf16.cpp).
void conv2d_bf16(const Bf16ConvJob& job);
// fp32 -> bf16 (nearest, ties to even) and back, elementwise.
void fp32_to_bf16(const View& x, const Bf16View& out);
void bf16_to_fp32(const Bf16View& x, const View& out);

}  // namespace fastsr
