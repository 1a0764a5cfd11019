#include "winograd_int8.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fastsr {

// Channels in whole vectors of every family (16 lanes at most); below 32 the transforms
// cost as much as the GEMMs save, as for fp32 Winograd.
bool int8_winograd_fits(int cin, int cout, int kh, int kw, int stride, int dilation,
                        int pad_top, int pad_left, int shuffle) {
  return kh == 3 && kw == 3 && stride == 1 && dilation == 1 && pad_top == 1 && pad_left == 1 &&
         shuffle == 1 && cin >= 32 && cout >= 32 && cin % 16 == 0 && cout % 16 == 0;
}

namespace {

// |V| <= 1020, so V << 5 still fits int16. Below a scale of 2^-5 the multiplier saturates
// (a tap that spans under 4 integer steps is quantised no finer than that).
void set_tap_requantizer(double scale, int& shift, int16_t& mult) {
  shift = 0;
  while (shift < 5 && scale * double(1 << shift) < 1.0) ++shift;
  mult = int16_t(std::min(32767.0, std::nearbyint(32768.0 / (scale * double(1 << shift)))));
}

}  // namespace

Int8WinogradLayer pack_winograd_int8(const int8_t* weight, const float* w_scale,
                                     const float* tap_scale, const float* bias, int cout,
                                     int cin, const Int8ConvParams& params, Int8Isa isa) {
  if (!int8_winograd_fits(cin, cout, 3, 3, 1, 1, 1, 1, 1))
    throw std::invalid_argument(
        "int8 Winograd needs >= 32 input and output channels, multiples of 16");
  // AMX's direct packing is AVX-512 VNNI's; its Winograd taps run on VNNI.
  if (isa == Int8Isa::Amx) isa = Int8Isa::Avx512Vnni;
  Int8WinogradLayer L;
  L.isa = isa, L.cin = cin, L.cout = cout, L.x_zero = params.x_zero;
  for (int tap = 0; tap < kInt8WinogradTaps; ++tap) {
    if (!(tap_scale[tap] > 0.f)) throw std::invalid_argument("int8 Winograd: tap scales must be > 0");
    set_tap_requantizer(double(tap_scale[tap]), L.tap_shift[tap], L.tap_mult[tap]);
    L.any_tap_shift = L.any_tap_shift || L.tap_shift[tap] > 0;
    Int8ConvParams p = params;
    p.stride = 1, p.dilation = 1, p.pad_top = 0, p.pad_left = 0, p.shuffle = 1;
    p.x_scale = params.x_scale * tap_scale[tap];
    p.x_zero = 128;
    L.gemm.push_back(pack_conv_int8(weight + int64_t(tap) * cout * cin, w_scale + tap * cout,
                                    tap == 0 ? bias : nullptr, cout, cin, 1, 1, p, isa));
  }
  const int lanes = L.gemm[0].lanes;
  L.tap_scales.resize(size_t(kInt8WinogradTaps) * cout);
  L.u8_tap_scales.resize(L.tap_scales.size());
  for (int c = 0; c < cout; ++c)
    for (int tap = 0; tap < kInt8WinogradTaps; ++tap) {
      const size_t at = size_t((c / lanes * kInt8WinogradTaps + tap) * lanes + c % lanes);
      L.tap_scales[at] = L.gemm[size_t(tap)].scale[size_t(c)];
      L.u8_tap_scales[at] = L.tap_scales[at] * L.gemm[0].out_inv_scale;
    }
  return L;
}

size_t winograd_int8_scratch_floats(int cin, int cout) {
  const size_t bytes = size_t(kInt8WinogradTaps) * (size_t(kInt8WinogradTileBlock) + 1) * cin;
  const size_t tile_sums = size_t(kInt8WinogradTaps) * cout + kInt8WinogradTilePad;
  return tile_sums * kInt8WinogradTileBlock + (bytes + 3) / 4;
}

void winograd_int8(const Int8WinogradJob& job) {
  switch (job.layer->isa) {
#ifdef FASTSR_HAS_X86_KERNELS
    case Int8Isa::Avx512Vnni: winograd_int8_avx512vnni(job); return;
    case Int8Isa::AvxVnni: winograd_int8_avxvnni(job); return;
    case Int8Isa::Avx2: winograd_int8_avx2(job); return;
#endif
#ifdef FASTSR_HAS_NEON_KERNELS
    case Int8Isa::NeonDotprod: winograd_int8_neon_dotprod(job); return;
    case Int8Isa::Neon: winograd_int8_neon(job); return;
#endif
    default: winograd_int8_portable(job);
  }
}

}  // namespace fastsr
