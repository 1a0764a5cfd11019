#include "conv2d_int8.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "cpu_features.h"

namespace fastsr {

// The AMX kernel runs its pixel tails with AVX-512 VNNI's.
static bool amx_int8_usable() {
  return cpu_has(CpuFeature::AmxInt8) && cpu_has(CpuFeature::Avx512Vnni);
}

static Int8Isa simd_level_int8_isa() {
  const Simd simd = active_simd();
  const bool x86 = simd == Simd::Avx2 || simd == Simd::Avx512;
  if (simd == Simd::Avx512 && amx_int8_usable()) return Int8Isa::Amx;
  if (simd == Simd::Avx512 && cpu_has(CpuFeature::Avx512Vnni)) return Int8Isa::Avx512Vnni;
  if (x86 && cpu_has(CpuFeature::AvxVnni)) return Int8Isa::AvxVnni;
  if (x86) return Int8Isa::Avx2;
  if (simd == Simd::Neon)
    return cpu_has(CpuFeature::NeonDotprod) ? Int8Isa::NeonDotprod : Int8Isa::Neon;
  return Int8Isa::Portable;
}

// Each family needs the fp32 vectors of a SIMD level for its epilogue, and its own feature.
std::vector<Int8Isa> supported_int8_isas() {
  const std::vector<Simd> levels = supported_simd();
  auto has = [&](Simd s) { return std::find(levels.begin(), levels.end(), s) != levels.end(); };
  std::vector<Int8Isa> isas;
  if (has(Simd::Avx512) && amx_int8_usable()) isas.push_back(Int8Isa::Amx);
  if (has(Simd::Avx512) && cpu_has(CpuFeature::Avx512Vnni)) isas.push_back(Int8Isa::Avx512Vnni);
  if (has(Simd::Avx2) && cpu_has(CpuFeature::AvxVnni)) isas.push_back(Int8Isa::AvxVnni);
  if (has(Simd::Avx2)) isas.push_back(Int8Isa::Avx2);
  if (has(Simd::Neon) && cpu_has(CpuFeature::NeonDotprod)) isas.push_back(Int8Isa::NeonDotprod);
  if (has(Simd::Neon)) isas.push_back(Int8Isa::Neon);
  isas.push_back(Int8Isa::Portable);
  return isas;
}

static std::optional<Int8Isa>& forced_isa() {
  static std::optional<Int8Isa> isa;
  return isa;
}

void force_int8_isa(Int8Isa isa) {
  const std::vector<Int8Isa> isas = supported_int8_isas();
  if (std::find(isas.begin(), isas.end(), isa) == isas.end())
    throw std::invalid_argument(std::string("int8 kernel family '") + int8_isa_name(isa) +
                                "' is not supported by this CPU (best: " +
                                int8_isa_name(isas.front()) + ")");
  forced_isa() = isa;
}

void follow_simd_level() { forced_isa().reset(); }

Int8Isa active_int8_isa() { return forced_isa().value_or(simd_level_int8_isa()); }

constexpr Int8Isa kInt8Isas[] = {Int8Isa::Portable,   Int8Isa::Avx2, Int8Isa::AvxVnni,
                                 Int8Isa::Avx512Vnni, Int8Isa::Neon, Int8Isa::NeonDotprod,
                                 Int8Isa::Amx};

const char* int8_isa_name(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::Amx: return "amx";
    case Int8Isa::Avx512Vnni: return "avx512vnni";
    case Int8Isa::AvxVnni: return "avxvnni";
    case Int8Isa::Avx2: return "avx2";
    case Int8Isa::NeonDotprod: return "neon-dotprod";
    case Int8Isa::Neon: return "neon";
    default: return "portable";
  }
}

Int8Isa parse_int8_isa(const std::string& name) {
  std::string known;
  for (Int8Isa isa : kInt8Isas) {
    if (name == int8_isa_name(isa)) return isa;
    known += std::string(known.empty() ? "" : ", ") + int8_isa_name(isa);
  }
  throw std::invalid_argument("unknown int8 kernel family '" + name + "', expected one of: " +
                              known);
}

// AMX only where a layer fills its tiles (int8_amx_fits). As for fp32: 8 or fewer
// channels would leave most of a 16-lane vector idle. AVX-VNNI (VEX) is not implied by
// AVX512_VNNI: Zen 4 has only the latter.
Int8Isa int8_isa_for(Int8Isa isa, int cin, int cout) {
#ifdef FASTSR_HAS_X86_KERNELS
  if (isa == Int8Isa::Amx && !int8_amx_fits(cin, cout)) isa = Int8Isa::Avx512Vnni;
#endif
  (void)cin;
  if (isa == Int8Isa::Avx512Vnni && cout <= 8)
    return cpu_has(CpuFeature::AvxVnni) ? Int8Isa::AvxVnni : Int8Isa::Avx2;
  return isa;
}

Int8ConvLayer pack_conv_int8(const int8_t* weight, const float* w_scale, const float* bias,
                             int cout, int cin, int kh, int kw, const Int8ConvParams& p,
                             Int8Isa isa) {
  if (p.act == Act::Tanh || p.act == Act::Sigmoid)
    throw std::invalid_argument("int8 conv2d: tanh and sigmoid epilogues stay fp32");
  const int64_t count = int64_t(cout) * cin * kh * kw;
  for (int64_t i = 0; i < count; ++i)
    if (weight[i] > kInt8WeightMax || weight[i] < -kInt8WeightMax)
      throw std::invalid_argument("int8 conv2d: weights must lie in [-63, 63]");
  isa = int8_isa_for(isa, cin, cout);
  Int8ConvLayer L;
  L.cin = cin, L.cout = cout, L.kh = kh, L.kw = kw;
  L.stride = p.stride, L.dilation = p.dilation, L.pad_top = p.pad_top, L.pad_left = p.pad_left;
  L.isa = isa;
  L.lanes = int8_tile_shape(isa).lanes;
  const int max_vectors = int8_tile_shape(isa).max_vectors;
  L.cin4 = (cin + 3) / 4 * 4;
  L.act = p.act, L.alpha = p.alpha, L.shuffle = p.shuffle;
  L.out_inv_scale = 1.f / p.out_scale, L.out_zero = float(p.out_zero);

  const int group_width = L.lanes * max_vectors;
  const int64_t taps = int64_t(kh) * kw * L.cin4;
  int64_t offset = 0;
  for (int first = 0; first < cout; first += group_width) {
    const int n = std::min(group_width, cout - first);
    const int nvec = (n + L.lanes - 1) / L.lanes;
    L.groups.push_back({first, n, nvec, offset});
    offset += taps * nvec * L.lanes;
  }
  L.packed = AlignedArray<int8_t>(size_t(offset));
  for (const ConvGroup& g : L.groups) {
    const int width = g.nvec * L.lanes;
    int8_t* dst = L.packed.data() + g.offset;
    for (int ky = 0; ky < kh; ++ky)
      for (int kx = 0; kx < kw; ++kx)
        for (int q = 0; q < L.cin4 / 4; ++q, dst += 4 * width)
          for (int k = 0; k < g.count; ++k)
            for (int i = 0; i < 4 && 4 * q + i < cin; ++i) {
              const int co = g.first + k, ci = 4 * q + i;
              dst[4 * k + i] = weight[((int64_t(co) * cin + ci) * kh + ky) * kw + kx];
            }
  }
  const size_t padded = size_t((cout + L.lanes - 1) / L.lanes * L.lanes);
  // The NEON kernels sum (x - 128) * w: (x - zero) * w is that minus (zero - 128) * w.
  const bool signed_x = isa == Int8Isa::Neon || isa == Int8Isa::NeonDotprod;
  const int zero = signed_x ? p.x_zero - 128 : p.x_zero;
  L.zero_sum.assign(padded, 0);
  L.scale.assign(padded, 0.f);
  L.bias.assign(padded, 0.f);
  L.slope.assign(padded, 0.f);
  L.u8_scale.assign(padded, 0.f);
  L.u8_bias.assign(padded, 0.f);
  for (int co = 0; co < cout; ++co) {
    int32_t sum = 0;
    for (int64_t i = 0; i < int64_t(cin) * kh * kw; ++i) sum += weight[co * int64_t(cin) * kh * kw + i];
    L.zero_sum[size_t(co)] = zero * sum;
    L.scale[size_t(co)] = p.x_scale * w_scale[co];
    if (bias) L.bias[size_t(co)] = bias[co];
    if (p.slope) L.slope[size_t(co)] = p.slope[co];
    L.u8_scale[size_t(co)] = L.scale[size_t(co)] * L.out_inv_scale;
    L.u8_bias[size_t(co)] = L.bias[size_t(co)] * L.out_inv_scale + L.out_zero;
  }
  return L;
}

void conv2d_int8(const Int8ConvJob& job) {
  switch (job.layer->isa) {
#ifdef FASTSR_HAS_X86_KERNELS
    case Int8Isa::Amx: conv2d_int8_amx(job); return;
    case Int8Isa::Avx512Vnni: conv2d_int8_avx512vnni(job); return;
    case Int8Isa::AvxVnni: conv2d_int8_avxvnni(job); return;
    case Int8Isa::Avx2: conv2d_int8_avx2(job); return;
#endif
#ifdef FASTSR_HAS_NEON_KERNELS
    case Int8Isa::NeonDotprod: conv2d_int8_neon_dotprod(job); return;
    case Int8Isa::Neon: conv2d_int8_neon(job); return;
#endif
    default: conv2d_int8_portable(job);
  }
}

void quantize_u8(const QuantizeJob& job, Int8Isa isa) {
  switch (isa) {
#ifdef FASTSR_HAS_X86_KERNELS
    case Int8Isa::Amx:  // AMX convs read what AVX-512 VNNI's quantize step writes
    case Int8Isa::Avx512Vnni: quantize_u8_avx512vnni(job); return;
    case Int8Isa::AvxVnni: quantize_u8_avxvnni(job); return;
    case Int8Isa::Avx2: quantize_u8_avx2(job); return;
#endif
#ifdef FASTSR_HAS_NEON_KERNELS
    case Int8Isa::NeonDotprod: quantize_u8_neon_dotprod(job); return;
    case Int8Isa::Neon: quantize_u8_neon(job); return;
#endif
    default: quantize_u8_portable(job);
  }
}

void dequantize_u8(const ByteView& x, float scale, int zero, const View& out) {
  const int rows = x.n * x.h;
#pragma omp for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const int b = r / x.h, y = r % x.h;
    for (int i = 0; i < x.w; ++i) {
      const uint8_t* s = x.at(b, y, i);
      float* d = out.at(b, y, i);
      for (int c = 0; c < x.c; ++c) d[c] = float(int(s[c]) - zero) * scale;
    }
  }
}

}  // namespace fastsr
