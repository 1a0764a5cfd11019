// bf16 direct convolution on AMX: TDPBF16PS multiplies a tile of 16 pixels x 2c bf16 input
// channels of one tap by a tile of c channel pairs x 16 output channels into 16 x 16 fp32,
// the sums vdpbf16ps forms lane by lane. The layer keeps AVX512_BF16's packing,
// [ky][kx][pair][nvec*16][2], whose pair rows are exactly the weight tile's rows, so that
// kernel's tiles run the pixel tails and its epilogue stores the accumulators.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_bf16.h"

namespace fastsr {
namespace {

#include "ops_avx512.inc"
#include "microkernel.inc"
#include "conv2d_store.inc"
#include "bf16_ops_512.inc"
#include "conv2d_bf16_kernel.inc"
#include "amx_tiles.inc"

constexpr int64_t kBytes = sizeof(uint16_t);

// PB blocks of 16 pixels from ow0, vectors j0 .. j0 + JV - 1 of group g.
template <int PB, int JV>
void amx_tile(const Bf16ConvJob& job, const ConvGroup& g, int chunk, int j0, int b, int oh,
              int ow0) {
  const Bf16ConvLayer& B = *job.layer;
  const ConvLayer& L = B.conv;
  const Bf16View& x = job.x;
  const uint16_t* in = x.at(b, oh * L.stride - L.pad_top, ow0 * L.stride - L.pad_left);
  const int64_t step = L.stride * x.pix;
  const int64_t pair_step = int64_t(g.nvec) * V * 2;
  const uint16_t* w = B.packed.data() + g.offset + j0 * V * 2;
  // Row p of accumulator tile j is acc[p][j]: the AVX-512 epilogue's layout.
  Reg acc[PB * kTileRows][JV];
  amx_block<TileDot::Bf16, PB, JV>(reinterpret_cast<const uint8_t*>(in), step * kBytes,
                                   x.row * kBytes, x.pix * kBytes, L.kh, L.kw, L.dilation,
                                   reinterpret_cast<const uint8_t*>(w), pair_step * kBytes,
                                   B.pairs, chunk, reinterpret_cast<uint8_t*>(&acc[0][0]));
  const int first = g.first + j0 * V;
  const ConvGroup vectors{first, std::min(JV * V, g.first + g.count - first), JV, g.offset};
  store_bf16_job<PB * kTileRows, JV>(job, vectors, acc, b, oh, ow0);
}

// The row's whole 16-pixel blocks against vectors j0 .. j0 + JV - 1: one pair's weights
// (36 KB at 64 -> 64 channels 3x3) stay in L1 across the row.
template <int JV>
void amx_row(const Bf16ConvJob& job, const ConvGroup& g, int chunk, int j0, int b, int oh) {
  const int ow = job.epilogue.ow;
  int ow0 = 0;
  for (; ow0 + 2 * kTileRows <= ow; ow0 += 2 * kTileRows)
    amx_tile<2, JV>(job, g, chunk, j0, b, oh, ow0);
  if (ow0 + kTileRows <= ow) amx_tile<1, JV>(job, g, chunk, j0, b, oh, ow0);
}

void run_conv_amx(const Bf16ConvJob& job) {
  const int chunk = chunk_of(job.layer->pairs);
  configure_tiles(chunk);
  const ConvJob& e = job.epilogue;
  const int rows = job.x.n * e.oh;
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int b = row / e.oh, oh = row % e.oh;
    for (const ConvGroup& g : job.layer->conv.groups) {
      int j = 0;
      for (; j + 2 <= g.nvec; j += 2) amx_row<2>(job, g, chunk, j, b, oh);
      if (j < g.nvec) amx_row<1>(job, g, chunk, j, b, oh);
      const int P = B16::pixels(g.nvec);
      const auto& fns = kBf16Tiles[size_t(g.nvec - 1)];
      int ow0 = e.ow / kTileRows * kTileRows;
      for (; ow0 + P <= e.ow; ow0 += P) fns[size_t(P - 1)](job, g, b, oh, ow0);
      if (ow0 < e.ow) fns[size_t(e.ow - ow0 - 1)](job, g, b, oh, ow0);
    }
  }
  _tile_release();
}

// Images narrower than a tile have only pixel tails: the AVX512_BF16 kernel, without tile
// setup.
void conv2d_bf16_amx(const Bf16ConvJob& job) {
  if (job.epilogue.ow < kTileRows)
    run_conv_bf16(job);
  else
    run_conv_amx(job);
}

}  // namespace

// Every even channel count: tiles beat AVX512_BF16's vectors at every width measured (Xeon
// SPR, 3x3 at 640x360: 2 -> 16 channels 0.77x its time, 16 -> 4 0.22x, 16 -> 16 0.14-0.21x,
// 64 -> 64 0.12-0.20x; docs/BENCHMARKS.md), even with a tile row a sixteenth used. An odd
// count would read a pixel's last pair past the view.
bool bf16_amx_fits(int cin, int /*cout*/) { return cin % 2 == 0; }

extern const Bf16Kernels kAmxBf16Kernels = {conv2d_bf16_amx, rows_to_bf16, rows_from_bf16};

}  // namespace fastsr
