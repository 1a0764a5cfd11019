// Winograd F(4x4, 3x3): a 3x3 stride-1 convolution computed per 4x4 output tile as 36
// independent channel GEMMs on transformed 6x6 input tiles, 4x fewer multiply-adds than
// the direct form. Used for layers with many channels, where the GEMMs dominate the
// transforms; the epilogue (bias, activation, skip) is fused into the output transform.
#pragma once
#include <vector>

#include "aligned.h"
#include "conv2d.h"

namespace fastsr {

constexpr int kWinogradTaps = 36;  // 6x6 transformed tile
// Tiles per GEMM block: its transformed inputs and outputs (2 x 110 KB at 64 channels)
// stay in L2 beside the streamed weights; 6 to 48 measured alike.
constexpr int kWinogradTileBlock = 12;

struct WinogradLayer {
  ConvLayer epilogue;  // bias, activation (its own weights are unused)
  std::vector<ConvLayer> gemm;  // per transformed tap: the cin x cout matrix packed as 1x1
};

// Whether the Winograd path can run this conv (else use the direct one); one with a pixel
// shuffle epilogue too, into a buffer of its own (conv_op.cpp).
bool winograd_fits(int cin, int cout, int kh, int kw, int stride, int dilation, int pad_top,
                   int pad_left, Simd simd);

// weight: OIHW (cout, cin, 3, 3).
WinogradLayer pack_winograd(const float* weight, const float* bias, int cout, int cin, Simd simd);

struct WinogradJob {
  const WinogradLayer* layer;
  View x, out;
  const View* skip;
  std::vector<AlignedFloats>* scratch;  // one per thread, grown inside the run if needed
};

size_t winograd_scratch_floats(int cin, int cout);

}  // namespace fastsr
