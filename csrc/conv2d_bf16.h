// bf16 direct convolution on CPUs with native bf16 dot products (AVX512_BF16 vdpbf16ps,
// ARMv8.6 FEAT_BF16 bfdot): bf16 activations x bf16 weights, two input channels per fp32
// lane, fp32 accumulation, and the fp32 kernel's epilogue:
//   y = act(acc + bias) ; pixel-shuffle ; y += skip
// stored as fp32, rounded (to nearest, ties to even) to bf16 for the next bf16 layer, or
// both from the same registers.
//
// There is no emulated fallback: without the instruction a bf16 product costs more than
// an fp32 one, so elsewhere bf16 is simply not offered (bf16_supported()).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "conv2d.h"

namespace fastsr {

using Bf16View = NhwcView<uint16_t>;  // bf16 bit patterns (view.h)

// Kernel families for bf16, on top of active_simd() (FASTSR_SIMD may cap it): at the avx512
// level AMX-BF16 where cpuid reports it and Linux grants the tile state, else AVX512_BF16
// where cpuid reports it; FEAT_BF16 at the neon level where HWCAP2 (Linux) or sysctl
// (macOS) reports it; None elsewhere. force_bf16_isa picks one of supported_bf16_isas()
// instead while the active level has any (every family is then testable on a CPU that has
// a better one); nullopt follows the level again.
enum class Bf16Isa { Avx512Bf16, NeonBf16, Amx, None };
Bf16Isa active_bf16_isa();
std::vector<Bf16Isa> supported_bf16_isas();  // best first; empty without a bf16 dot product
void force_bf16_isa(std::optional<Bf16Isa> isa);  // throws std::invalid_argument if unsupported
const char* bf16_isa_name(Bf16Isa isa);
Bf16Isa parse_bf16_isa(const std::string& name);  // throws std::invalid_argument
inline bool bf16_supported() { return active_bf16_isa() != Bf16Isa::None; }
bool bf16_amx_fits(int cin, int cout);  // conv2d_bf16_amx.cpp: the layers AMX tiles take
// The family a layer of `cin` -> `cout` channels is packed for when `isa` is active.
Bf16Isa bf16_isa_for(Bf16Isa isa, int cin, int cout);

// Register blocking of each family with a kernel, indexed by Bf16Isa (see TileShape).
constexpr TileShape kBf16TileShapes[] = {
    {16, 4, {12, 12, 8, 6}},  // Avx512Bf16: the fp32 AVX-512 tile
    {4, 4, {12, 9, 6, 5}},    // NeonBf16: 20 accumulators + 4 weights + 5 inputs (4 pairs each)
    {16, 4, {12, 12, 8, 6}},  // Amx: Avx512Bf16's packing, whose tiles run the pixel tails
};
constexpr const TileShape& bf16_tile_shape(Bf16Isa isa) { return kBf16TileShapes[int(isa)]; }

// The blocking half of a kernel's bf16 pair type `B16` (conv2d_bf16_kernel.inc).
template <Bf16Isa isa>
struct Bf16Tile {
  static constexpr TileShape tile = bf16_tile_shape(isa);
  static constexpr int V = tile.lanes;
  static constexpr int max_vectors = tile.max_vectors;
  static constexpr int pixels(int nv) { return tile.pixels[nv - 1]; }
  // Pairs of one pixel that one load serves (lane-indexed dot products); 1: broadcast.
  static constexpr int pairs_per_load = 1;
};

struct Bf16ConvLayer {
  // Geometry, bias, slope, activation and shuffle as the fp32 epilogue reads them
  // (conv.packed stays empty); groups of up to max_vectors vectors of output channels.
  ConvLayer conv;
  Bf16Isa isa = Bf16Isa::None;
  int pairs = 0;  // input channels rounded up to even, halved
  AlignedArray<uint16_t> packed;  // per group [ky][kx][pairs][nvec * lanes][2], zero past cin
};

// weight: OIHW float32 (rounded to bf16 here); bias: cout floats or null; slope: cout
// floats for PReLU or null. Packed for bf16_isa_for(active_bf16_isa(), cin, cout); throws
// std::invalid_argument when that is None.
Bf16ConvLayer pack_conv_bf16(const float* weight, const float* bias, const float* slope,
                             int cout, int cin, int kh, int kw, int stride, int dilation,
                             int pad_top, int pad_left, Act act, float alpha, int shuffle);

struct Bf16ConvJob {
  const Bf16ConvLayer* layer;
  Bf16View x;
  ConvJob epilogue;  // the fp32 output (null data: none), skip and their shuffle offsets
  Bf16View out;      // bf16 output; null data: none (at least one of the two is given)
  const int64_t* out_offsets;  // shuffle_offsets of out
};

// One family's kernels (conv2d_bf16_<isa>.cpp, built with that ISA's flags), each called
// inside an OpenMP parallel region.
struct Bf16Kernels {
  void (*conv)(const Bf16ConvJob& job);
  void (*to_bf16)(const View& x, const Bf16View& out);  // nearest, ties to even
  void (*from_bf16)(const Bf16View& x, const View& out);  // exact
};
extern const Bf16Kernels kAvx512Bf16Kernels, kNeonBf16Kernels, kAmxBf16Kernels;
// Throws std::invalid_argument for None or a family this build lacks.
const Bf16Kernels& bf16_kernels(Bf16Isa isa);

inline void conv2d_bf16(const Bf16ConvJob& job) { bf16_kernels(job.layer->isa).conv(job); }

}  // namespace fastsr
