// Int8 Winograd F(2x2, 3x3): a 3x3 stride-1 conv as 16 int8 channel GEMMs per 2x2 output
// tile, 2.25x fewer multiply-adds than the direct int8 conv.
//   input:  V = B^T d B of each 4x4 patch d = x - zero_x takes adds only: exact integers
//           (|V| <= 4 * 255) in int16 lanes, twice the lanes of fp32. Each tap is
//           requantised to u8 around 128 by a Q15 fixed-point multiply (vpmulhrsw, NEON
//           vqrdmulh): v = clamp((((V << shift) * mult + 2^14) >> 15) + 128, 0, 255), with
//           mult = round(2^15 / (tap_scale * 2^shift)) and shift the least in [0, 5] that
//           keeps mult < 2^15 (fastsr/winograd_int8.py quantize_taps, the numpy rule).
//   GEMMs:  per tap a 1x1 int8 conv of the tiles (the family's micro-kernel and packing),
//           weights G g G^T quantised per (tap, out channel) to |q| <= 63 in Python
//           (fastsr.quantize.winograd_int8_weight), int32 sums left per (tap, channel)
//           straight from the accumulator registers.
//   output: the sums dequantised per (tap, channel) as A^T m A reads them, in fp32, with
//           the epilogue (bias, activation, skip, fp32 and/or u8
//           store) as a direct int8 conv's. A u8 output alone with ReLU or none comes
//           straight from the sums, 1 / out_scale folded into the tap scales and bias.
#pragma once
#include <vector>

#include "aligned.h"
#include "conv2d_int8.h"

namespace fastsr {

constexpr int kInt8WinogradTaps = 16;  // 4x4 transformed tile
// Tiles per block: its u8 taps (36 KB at 64 channels) and int32 sums (144 KB) stay in L2;
// 36 ran 1.1-1.2x faster than 16 (AVX2, AVX-512 VNNI, 360x640).
constexpr int kInt8WinogradTileBlock = 36;
// int32s after each tile's sums in the scratch: at 64 channels a tile's sums are 4 KB, and
// with the tiles' sums 4 KB apart the GEMMs' stores and the transforms' loads alias
// (4K aliasing): quality_x2 int8 ran 254-279 ms wall without the pad, 239-245 with it
// (Zen 4, huge-page scratch, 8 processes each).
constexpr int kInt8WinogradTilePad = 16;

struct Int8WinogradLayer {
  Int8Isa isa = Int8Isa::Portable;
  int cin = 0, cout = 0;
  int x_zero = 0;
  // Per tap, the fixed-point requantisation of its u8 taps (see the top of this file).
  int tap_shift[kInt8WinogradTaps];
  int16_t tap_mult[kInt8WinogradTaps];
  bool any_tap_shift = false;
  // Per tap: its cin x cout matrix packed as a 1x1 conv with zero_sum for zero point 128;
  // the epilogue fields of the first one serve all.
  std::vector<Int8ConvLayer> gemm;
  // x_scale * tap_scale * w_scale as [cout / lanes][tap][lanes], the layout of the sums;
  // u8_tap_scales the same over out_scale (with gemm[0].u8_bias: no fp32 value between).
  std::vector<float> tap_scales, u8_tap_scales;
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
