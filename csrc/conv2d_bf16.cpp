#include "conv2d_bf16.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu_features.h"

namespace fastsr {

namespace {

// Round to nearest, ties to even, as vcvtneps2bf16 and bfcvtn do for finite values.
uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace

// The AMX kernel runs its pixel tails with AVX512_BF16's.
static bool amx_bf16_usable() {
  return cpu_has(CpuFeature::AmxBf16) && cpu_has(CpuFeature::Avx512Bf16);
}

static Bf16Isa simd_level_bf16_isa() {
  const Simd simd = active_simd();
  if (simd == Simd::Avx512 && amx_bf16_usable()) return Bf16Isa::Amx;
  if (simd == Simd::Avx512 && cpu_has(CpuFeature::Avx512Bf16)) return Bf16Isa::Avx512Bf16;
  if (simd == Simd::Neon && cpu_has(CpuFeature::NeonBf16)) return Bf16Isa::NeonBf16;
  return Bf16Isa::None;
}

// Each family needs the fp32 vectors of a SIMD level for its epilogue, and its own feature.
std::vector<Bf16Isa> supported_bf16_isas() {
  const std::vector<Simd> levels = supported_simd();
  auto has = [&](Simd s) { return std::find(levels.begin(), levels.end(), s) != levels.end(); };
  std::vector<Bf16Isa> isas;
  if (has(Simd::Avx512) && amx_bf16_usable()) isas.push_back(Bf16Isa::Amx);
  if (has(Simd::Avx512) && cpu_has(CpuFeature::Avx512Bf16)) isas.push_back(Bf16Isa::Avx512Bf16);
  if (has(Simd::Neon) && cpu_has(CpuFeature::NeonBf16)) isas.push_back(Bf16Isa::NeonBf16);
  return isas;
}

static std::optional<Bf16Isa>& forced_isa() {
  static std::optional<Bf16Isa> isa;
  return isa;
}

void force_bf16_isa(std::optional<Bf16Isa> isa) {
  const std::vector<Bf16Isa> isas = supported_bf16_isas();
  if (isa && std::find(isas.begin(), isas.end(), *isa) == isas.end())
    throw std::invalid_argument(std::string("bf16 kernel family '") + bf16_isa_name(*isa) +
                                "' is not supported by this CPU (best: " +
                                bf16_isa_name(isas.empty() ? Bf16Isa::None : isas.front()) +
                                ")");
  forced_isa() = isa;
}

// A level below the families' own (FASTSR_SIMD=avx2) has none, forced or not: each CPU's
// families share one SIMD level.
Bf16Isa active_bf16_isa() {
  const Bf16Isa level = simd_level_bf16_isa();
  return level == Bf16Isa::None ? level : forced_isa().value_or(level);
}

constexpr Bf16Isa kBf16Isas[] = {Bf16Isa::Amx, Bf16Isa::Avx512Bf16, Bf16Isa::NeonBf16};

const char* bf16_isa_name(Bf16Isa isa) {
  switch (isa) {
    case Bf16Isa::Amx: return "amx";
    case Bf16Isa::Avx512Bf16: return "avx512bf16";
    case Bf16Isa::NeonBf16: return "neon-bf16";
    default: return "none";
  }
}

Bf16Isa parse_bf16_isa(const std::string& name) {
  std::string known;
  for (Bf16Isa isa : kBf16Isas) {
    if (name == bf16_isa_name(isa)) return isa;
    known += std::string(known.empty() ? "" : ", ") + bf16_isa_name(isa);
  }
  throw std::invalid_argument("unknown bf16 kernel family '" + name + "', expected one of: " +
                              known);
}

Bf16Isa bf16_isa_for(Bf16Isa isa, int cin, int cout) {
#ifdef FASTSR_HAS_X86_KERNELS
  if (isa == Bf16Isa::Amx && !bf16_amx_fits(cin, cout)) return Bf16Isa::Avx512Bf16;
#endif
  (void)cin, (void)cout;
  return isa;
}

const Bf16Kernels& bf16_kernels(Bf16Isa isa) {
  switch (isa) {
#ifdef FASTSR_HAS_X86_KERNELS
    case Bf16Isa::Amx: return kAmxBf16Kernels;
    case Bf16Isa::Avx512Bf16: return kAvx512Bf16Kernels;
#endif
#ifdef FASTSR_HAS_NEON_KERNELS
    case Bf16Isa::NeonBf16: return kNeonBf16Kernels;
#endif
    default:
      throw std::invalid_argument(std::string("this build has no bf16 kernels for '") +
                                  bf16_isa_name(isa) + "'");
  }
}

Bf16ConvLayer pack_conv_bf16(const float* weight, const float* bias, const float* slope,
                             int cout, int cin, int kh, int kw, int stride, int dilation,
                             int pad_top, int pad_left, Act act, float alpha, int shuffle) {
  const Bf16Isa active = active_bf16_isa();
  if (active == Bf16Isa::None)
    throw std::invalid_argument("bf16 conv2d: this CPU (at the active SIMD level) has no bf16 "
                                "dot product (avx512_bf16, or FEAT_BF16 on ARM)");
  const Bf16Isa isa = bf16_isa_for(active, cin, cout);
  const int lanes = bf16_tile_shape(isa).lanes, max_vectors = bf16_tile_shape(isa).max_vectors;
  Bf16ConvLayer B;
  B.isa = isa;
  ConvLayer& L = B.conv;
  L.cin = cin, L.cout = cout, L.kh = kh, L.kw = kw;
  L.stride = stride, L.dilation = dilation, L.pad_top = pad_top, L.pad_left = pad_left;
  L.simd = active_simd(), L.lanes = lanes;
  L.act = act, L.alpha = alpha, L.shuffle = shuffle;
  B.pairs = (cin + 1) / 2;
  const int64_t taps = int64_t(kh) * kw * B.pairs;
  int64_t offset = 0;
  for (int first = 0; first < cout; first += lanes * max_vectors) {
    const int n = std::min(lanes * max_vectors, cout - first);
    const int nvec = (n + lanes - 1) / lanes;
    L.groups.push_back({first, n, nvec, offset});
    offset += taps * nvec * lanes * 2;
  }
  B.packed = AlignedArray<uint16_t>(size_t(offset));
  for (const ConvGroup& g : L.groups) {
    const int width = g.nvec * lanes;
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
  const size_t padded = size_t((cout + lanes - 1) / lanes * lanes);
  L.bias = AlignedFloats(padded);
  if (bias) std::copy(bias, bias + cout, L.bias.data());
  if (slope) {
    L.slope = AlignedFloats(padded);
    std::copy(slope, slope + cout, L.slope.data());
  }
  return B;
}

}  // namespace fastsr
