// Int8 direct convolution on AMX: TDPBUSD multiplies a tile of 16 pixels x 4c input bytes
// (u8) of one tap by a tile of c quads x 16 output channels (s8) into 16 x 16 int32, the
// same integer sums vpdpbusd forms lane by lane. The layer keeps AVX-512 VNNI's packing,
// [ky][kx][quad][nvec*16][4], whose quad rows are exactly the weight tile's rows, so the
// VNNI kernel's tiles run the pixel tails and its epilogue stores the accumulators.
#include <immintrin.h>

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

#include "amx_tiles.inc"

// Below 8 quads (32 input channels) a tile row is less than half used. A weight tile of 9-15
// output channels is partly empty yet still beats VNNI's one-vector tiles (quality_x2's last
// conv, 64 -> 12, runs 7 % of the frame on VNNI); 8 or fewer go to AVX-VNNI's 8 lanes.
constexpr int kMinChunk = 8;
constexpr int kMinCout = 9;

// PB blocks of 16 pixels from ow0, vectors j0 .. j0 + JV - 1 of group g.
template <int PB, int JV>
void amx_tile(const Int8ConvJob& job, const ConvGroup& g, int chunk, int j0, int b, int oh,
              int ow0) {
  const Int8ConvLayer& L = *job.layer;
  const ByteView& x = job.x;
  const uint8_t* in = x.at(b, oh * L.stride - L.pad_top, ow0 * L.stride - L.pad_left);
  const int64_t step = L.stride * x.pix;
  const int64_t quad_step = int64_t(g.nvec) * V * 4;
  const int8_t* w = L.packed.data() + g.offset + j0 * V * 4;
  // Row p of accumulator tile j is acc[p][j]: the VNNI epilogue's layout.
  Acc acc[PB * kTileRows][JV];
  amx_block<TileDot::U8S8, PB, JV>(in, step, x.row, x.pix, L.kh, L.kw, L.dilation,
                                   reinterpret_cast<const uint8_t*>(w), quad_step, L.cin4 / 4,
                                   chunk, reinterpret_cast<uint8_t*>(&acc[0][0]));
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
