// Int8 direct convolution: u8 activations (asymmetric, one scale and zero point per
// tensor) x s8 weights (symmetric, one scale per output channel), int32 accumulation,
// and the epilogue in fp32 registers as the fp32 kernel does it:
//   y = act((acc - zero_x * sum(w)) * (scale_x * scale_w) + bias) ; pixel-shuffle ; y += skip
// stored as fp32, requantised to u8 for the next int8 layer, or both from the same registers
// (a tensor an int8 conv reads that is also a skip or the model's output). A u8 output
// alone, with no skip and ReLU or no activation, skips the fp32 value: one multiply-add
// per channel takes the sums to the u8 grid (Int8ConvLayer::u8_scale).
//
// Weights are limited to |q| <= 63 (7 bits): AVX2 has no u8 x s8 dot product into int32,
// and its vpmaddubsw adds two u8 x s8 products into a saturating int16, which 7-bit
// weights keep exact (2 * 255 * 63 < 32767). The VNNI kernels (vpdpbusd, exact for any
// s8) run the same 7-bit weights, so every ISA computes the same integers. The NEON
// kernels multiply signed bytes only (sdot, smull): they take x - 128 (x ^ 0x80) and fold
// the 128 into zero_sum, an exact rewrite of the same integer sum.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "conv2d.h"

namespace fastsr {

constexpr int kInt8WeightMax = 63;

using ByteView = NhwcView<uint8_t>;  // u8 tensors of int8 layers (view.h)

// Kernel families for int8, on top of active_simd(): the VNNI ones where cpuid reports
// them, AMX above AVX-512 VNNI where cpuid reports AMX-INT8 and Linux grants the tile state,
// NEON's dot-product one where HWCAP (Linux) or sysctl (macOS) reports FEAT_DotProd.
// force_int8_isa picks one of supported_int8_isas() instead (every family is then
// testable on a CPU that has a better one); follow_simd_level undoes it.
enum class Int8Isa { Portable, Avx2, AvxVnni, Avx512Vnni, Neon, NeonDotprod, Amx };
Int8Isa active_int8_isa();
std::vector<Int8Isa> supported_int8_isas();  // best first
void force_int8_isa(Int8Isa isa);            // throws std::invalid_argument if unsupported
void follow_simd_level();
const char* int8_isa_name(Int8Isa isa);
bool int8_amx_fits(int cin, int cout);  // wide enough to fill tiles (the threshold)
Int8Isa parse_int8_isa(const std::string& name);  // throws std::invalid_argument
// The family a layer of `cin` -> `cout` channels is packed for when `isa` is active.
Int8Isa int8_isa_for(Int8Isa isa, int cin, int cout);

// Register blocking of each family, indexed by Int8Isa (see TileShape).
constexpr TileShape kInt8TileShapes[] = {
    {8, 2, {8, 4}},           // Portable: as the fp32 portable kernel
    {8, 2, {10, 5}},          // Avx2: 16 ymm = accumulators + weights + broadcast + ones + product
    {8, 2, {12, 6}},          // AvxVnni
    {16, 4, {12, 12, 8, 6}},  // Avx512Vnni
    {4, 4, {12, 10, 7, 5}},   // Neon: 5 px x 4 vectors = 20 accumulators + 4 weights + 3 temps
    {4, 4, {12, 9, 6, 5}},    // NeonDotprod: 20 accumulators + 4 weights + 5 inputs (4 quads each)
    {16, 4, {12, 12, 8, 6}},  // Amx: Avx512Vnni's packing, whose tiles run the pixel tails
};
constexpr const TileShape& int8_tile_shape(Int8Isa isa) { return kInt8TileShapes[int(isa)]; }

// The blocking half of a kernel's integer vector type `I8` (conv2d_int8_kernel.inc).
template <Int8Isa isa>
struct Int8Tile {
  static constexpr TileShape tile = int8_tile_shape(isa);
  static constexpr int V = tile.lanes;
  static constexpr int max_vectors = tile.max_vectors;
  static constexpr int pixels(int nv) { return tile.pixels[nv - 1]; }
  // Quads of one pixel that one load serves (lane-indexed dot products); 1: broadcast4.
  static constexpr int quads_per_load = 1;
};

struct Int8ConvLayer {
  int cin = 0, cout = 0, kh = 0, kw = 0;
  int stride = 1, dilation = 1, pad_top = 0, pad_left = 0;
  Int8Isa isa = Int8Isa::Portable;
  int lanes = 8;
  int cin4 = 0;  // input channels rounded up to 4 (the dot products take 4 at a time)
  std::vector<ConvGroup> groups;  // packed weights [ky][kx][cin4/4][nvec*lanes][4]
  AlignedArray<int8_t> packed;
  std::vector<int32_t> zero_sum;  // zero_x * sum(w) per channel, padded to lanes
  std::vector<float> scale, bias, slope;
  Act act = Act::None;
  float alpha = 0.f;
  int shuffle = 1;
  float out_inv_scale = 1.f, out_zero = 0.f;  // of the u8 output, if the job has one
  // A u8 output alone, with ReLU or no activation and no skip, is requantised straight
  // from the sums: q = clamp(round((acc - zero_sum) * u8_scale + u8_bias)), u8_scale =
  // scale / out_scale, u8_bias = bias / out_scale + out_zero; ReLU clamps at out_zero.
  std::vector<float> u8_scale, u8_bias;
};

struct Int8ConvParams {
  int stride = 1, dilation = 1, pad_top = 0, pad_left = 0;
  float x_scale = 1.f;
  int x_zero = 0;
  Act act = Act::None;
  const float* slope = nullptr;  // cout, PReLU only
  float alpha = 0.f;
  int shuffle = 1;
  float out_scale = 1.f;
  int out_zero = 0;
};

// weight: OIHW int8 with |q| <= kInt8WeightMax; w_scale, bias: cout floats.
Int8ConvLayer pack_conv_int8(const int8_t* weight, const float* w_scale, const float* bias,
                             int cout, int cin, int kh, int kw, const Int8ConvParams& params,
                             Int8Isa isa);

struct Int8ConvJob {
  const Int8ConvLayer* layer;
  ByteView x;
  View out;        // fp32 output; null data: none
  ByteView out_q;  // u8 output; null data: none (at least one of the two is given)
  const View* skip;
  const int64_t* out_offsets;    // shuffle_offsets of out, in elements
  const int64_t* out_q_offsets;  // of out_q
  const int64_t* skip_offsets;
  bool contiguous_store;
  int oh, ow;
};

// Called inside an OpenMP parallel region.
void conv2d_int8_portable(const Int8ConvJob& job);
void conv2d_int8_avx2(const Int8ConvJob& job);
void conv2d_int8_avxvnni(const Int8ConvJob& job);
void conv2d_int8_avx512vnni(const Int8ConvJob& job);
void conv2d_int8_neon(const Int8ConvJob& job);
void conv2d_int8_neon_dotprod(const Int8ConvJob& job);
void conv2d_int8_amx(const Int8ConvJob& job);
void conv2d_int8(const Int8ConvJob& job);

// fp32 -> u8 (round half to even, clamp) with the kernel family `isa`, the same float
// operations as a conv's u8 store; and back. Elementwise, inside a parallel region.
struct QuantizeJob {
  View x;
  ByteView out;
  float inv_scale, zero;
};
void quantize_u8_portable(const QuantizeJob& job);
void quantize_u8_avx2(const QuantizeJob& job);
void quantize_u8_avxvnni(const QuantizeJob& job);
void quantize_u8_avx512vnni(const QuantizeJob& job);
void quantize_u8_neon(const QuantizeJob& job);
void quantize_u8_neon_dotprod(const QuantizeJob& job);
void quantize_u8(const QuantizeJob& job, Int8Isa isa);
void dequantize_u8(const ByteView& x, float scale, int zero, const View& out);

}  // namespace fastsr
