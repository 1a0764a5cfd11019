// Int8 direct convolution on AMX: TDPBUSD multiplies a tile of 16 pixels x 4c input bytes
// (u8) of one tap by a tile of c quads x 16 output channels (s8) into 16 x 16 int32, the
// same integer sums vpdpbusd forms lane by lane. The layer keeps AVX-512 VNNI's packing,
// [ky][kx][quad][nvec*16][4], whose quad rows are exactly the weight tile's rows, so the
// VNNI kernel's tiles run the pixel tails and its epilogue stores the accumulators.
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_int8.h"

namespace fastsr {
namespace {

#include "ops_avx512.inc"
#include "microkernel.inc"
#include "int8_ops_512.inc"
#include "conv2d_int8_kernel.inc"

constexpr int kTileRows = 16;   // pixels of an input tile, rows of an accumulator tile
constexpr int kMaxChunk = 16;   // quads of an input tile row (64 bytes)
// Below 8 quads (32 input channels) a tile row is less than half used. A weight tile of 9-15
// output channels is partly empty yet still beats VNNI's one-vector tiles (quality_x2's last
// conv, 64 -> 12, runs 7 % of the frame on VNNI); 8 or fewer go to AVX-VNNI's 8 lanes.
constexpr int kMinChunk = 8;
constexpr int kMinCout = 9;

// Quads per tile: the largest divisor of the quads per tap that fits a row, so that every
// chunk has the same shape and one tile configuration serves the layer.
int chunk_of(int quads) {
  for (int c = std::min(quads, kMaxChunk);; --c)
    if (quads % c == 0) return c;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0-3: accumulators [pixel block][vector]; tmm4-5: the blocks' inputs; tmm6-7: the
// vectors' weights.
void configure_tiles(int chunk) {
  TileConfig cfg;
  for (int t = 0; t < 4; ++t) cfg.rows[t] = kTileRows, cfg.colsb[t] = 64;
  for (int t = 4; t < 6; ++t) cfg.rows[t] = kTileRows, cfg.colsb[t] = uint16_t(4 * chunk);
  for (int t = 6; t < 8; ++t) cfg.rows[t] = uint8_t(chunk), cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
}

// PB blocks of 16 pixels from ow0, vectors j0 .. j0 + JV - 1 of group g.
template <int PB, int JV>
void amx_tile(const Int8ConvJob& job, const ConvGroup& g, int chunk, int j0, int b, int oh,
              int ow0) {
  const Int8ConvLayer& L = *job.layer;
  const ByteView& x = job.x;
  const uint8_t* in = x.at(b, oh * L.stride - L.pad_top, ow0 * L.stride - L.pad_left);
  const int64_t step = L.stride * x.pix, block = kTileRows * step;
  const int64_t quad_step = int64_t(g.nvec) * V * 4;
  const int quads = L.cin4 / 4;
  const int8_t* w = L.packed.data() + g.offset + j0 * V * 4;
  _tile_zero(0);
  if constexpr (JV > 1) _tile_zero(1);
  if constexpr (PB > 1) _tile_zero(2);
  if constexpr (PB > 1 && JV > 1) _tile_zero(3);
  for (int ky = 0; ky < L.kh; ++ky)
    for (int kx = 0; kx < L.kw; ++kx) {
      const uint8_t* tap = in + ky * L.dilation * x.row + kx * L.dilation * x.pix;
      for (int q = 0; q < quads; q += chunk, w += chunk * quad_step) {
        _tile_loadd(4, tap + 4 * q, step);
        _tile_loadd(6, w, quad_step);
        if constexpr (JV > 1) _tile_loadd(7, w + V * 4, quad_step);
        _tile_dpbusd(0, 4, 6);
        if constexpr (JV > 1) _tile_dpbusd(1, 4, 7);
        if constexpr (PB > 1) {
          _tile_loadd(5, tap + 4 * q + block, step);
          _tile_dpbusd(2, 5, 6);
          if constexpr (JV > 1) _tile_dpbusd(3, 5, 7);
        }
      }
    }
  // Row p of accumulator tile j is acc[p][j]: the VNNI epilogue's layout.
  Acc acc[PB * kTileRows][JV];
  constexpr int64_t row_bytes = JV * sizeof(Acc);
  _tile_stored(0, &acc[0][0], row_bytes);
  if constexpr (JV > 1) _tile_stored(1, &acc[0][1], row_bytes);
  if constexpr (PB > 1) _tile_stored(2, &acc[kTileRows][0], row_bytes);
  if constexpr (PB > 1 && JV > 1) _tile_stored(3, &acc[kTileRows][1], row_bytes);
  const int first = g.first + j0 * V;
  const ConvGroup vectors{first, std::min(JV * V, g.first + g.count - first), JV, g.offset};
  store_int8_tile<PB * kTileRows, JV>(job, vectors, acc, b, oh, ow0);
}

template <int PB>
void amx_pixels(const Int8ConvJob& job, const ConvGroup& g, int chunk, int b, int oh, int ow0) {
  int j = 0;
  for (; j + 2 <= g.nvec; j += 2) amx_tile<PB, 2>(job, g, chunk, j, b, oh, ow0);
  if (j < g.nvec) amx_tile<PB, 1>(job, g, chunk, j, b, oh, ow0);
}

void run_conv_amx(const Int8ConvJob& job) {
  const int chunk = chunk_of(job.layer->cin4 / 4);
  configure_tiles(chunk);
  const int rows = job.x.n * job.oh;
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int b = row / job.oh, oh = row % job.oh;
    for (const ConvGroup& g : job.layer->groups) {
      int ow0 = 0;
      for (; ow0 + 2 * kTileRows <= job.ow; ow0 += 2 * kTileRows)
        amx_pixels<2>(job, g, chunk, b, oh, ow0);
      if (ow0 + kTileRows <= job.ow) amx_pixels<1>(job, g, chunk, b, oh, ow0), ow0 += kTileRows;
      const int P = I8::pixels(g.nvec);
      const auto& fns = kInt8Tiles[size_t(g.nvec - 1)];
      for (; ow0 + P <= job.ow; ow0 += P) fns[size_t(P - 1)](job, g, b, oh, ow0);
      if (ow0 < job.ow) fns[size_t(job.ow - ow0 - 1)](job, g, b, oh, ow0);
    }
  }
  _tile_release();
}

}  // namespace

bool int8_amx_usable() {
  static const bool usable = [] {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool vnni = ecx & (1u << 11), tile = edx & (1u << 24), int8 = edx & (1u << 25);
    if (!vnni || !tile || !int8) return false;
#ifdef __linux__
    // Linux (5.16+) enables the 8 KB tile state only for processes that ask, once:
    // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), from its uapi asm/prctl.h.
    constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return usable;
}

bool int8_amx_fits(int cin, int cout) {
  return chunk_of((cin + 3) / 4) >= kMinChunk && cout >= kMinCout;
}

// Images narrower than a tile have only pixel tails: the VNNI kernel, without tile setup.
void conv2d_int8_amx(const Int8ConvJob& job) {
  if (job.ow < kTileRows)
    run_conv_int8(job);
  else
    run_conv_amx(job);
}

}  // namespace fastsr
