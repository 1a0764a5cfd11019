// Int8 Winograd F(2x2, 3x3): a 3x3 stride-1 conv as 16 int8 channel GEMMs per 2x2 output
// tile, 2.25x fewer multiply-adds than the direct int8 conv.
//   input:  d = x - zero_x of each 4x4 u8 patch; V = B^T d B takes adds only, so its taps
//           are exact integers (|V| <= 4 * 255), requantised per tap to u8 with zero point
//           128: v = clamp(round(V / tap_scale[tap]) + 128) (the float operations of a
//           conv's u8 store, so numpy reproduces them).
//   GEMMs:  per tap a 1x1 int8 conv of the tiles (the family's micro-kernel and packing),
//           weights G g G^T quantised per (tap, out channel) to |q| <= 63 in Python
//           (fastsr.quantize.winograd_int8_weight); sums dequantised per (tap, channel).
//   output: A^T m A in fp32 with the epilogue (bias, activation, skip, fp32 and/or u8
//           store) as a direct int8 conv's.
#pragma once
#include <vector>

#include "aligned.h"
#include "conv2d_int8.h"

namespace fastsr {

constexpr int kInt8WinogradTaps = 16;  // 4x4 transformed tile
// Tiles per block: its u8 taps (36 KB at 64 channels) and float sums (144 KB) stay in L2;
// 36 ran 1.1-1.2x faster than 16 (AVX2, AVX-512 VNNI, 360x640).
constexpr int kInt8WinogradTileBlock = 36;

struct Int8WinogradLayer {
  Int8Isa isa = Int8Isa::Portable;
  int cin = 0, cout = 0;
  float x_zero = 0.f;
  float inv_tap_scale[kInt8WinogradTaps];
  // Per tap: its cin x cout matrix packed as a 1x1 conv, zero_sum for zero point 128,
  // scale = x_scale * tap_scale * w_scale; the epilogue fields of the first one serve all.
  std::vector<Int8ConvLayer> gemm;
};

// Whether the int8 Winograd path can run this conv.
bool int8_winograd_fits(int cin, int cout, int kh, int kw, int stride, int dilation,
                        int pad_top, int pad_left, int shuffle);

// weight: (16, cout, cin) int8 taps of G g G^T in row-major tap order, |q| <= 63;
// w_scale: (16, cout); tap_scale: 16 positive floats; bias: cout. params as a direct
// int8 conv's (stride, padding and shuffle unused).
Int8WinogradLayer pack_winograd_int8(const int8_t* weight, const float* w_scale,
                                     const float* tap_scale, const float* bias, int cout,
                                     int cin, const Int8ConvParams& params, Int8Isa isa);

struct Int8WinogradJob {
  const Int8WinogradLayer* layer;
  ByteView x;
  View out;        // fp32 output; null data: none
  ByteView out_q;  // u8 output; null data: none
  const View* skip;
  std::vector<AlignedFloats>* scratch;  // one per thread
};

size_t winograd_int8_scratch_floats(int cin, int cout);

// Called inside an OpenMP parallel region.
void winograd_int8_portable(const Int8WinogradJob& job);
void winograd_int8_avx2(const Int8WinogradJob& job);
void winograd_int8_avxvnni(const Int8WinogradJob& job);
void winograd_int8_avx512vnni(const Int8WinogradJob& job);
void winograd_int8_neon(const Int8WinogradJob& job);
void winograd_int8_neon_dotprod(const Int8WinogradJob& job);
void winograd_int8(const Int8WinogradJob& job);

}  // namespace fastsr
