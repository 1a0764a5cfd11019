#include <cstdint>

#include "winograd.h"

namespace fastsr {

bool winograd_fits(int cin, int cout, int kh, int kw, int stride, int dilation, int pad_top,
                   int pad_left, Simd simd) {
  const int lanes = tile_shape(simd).lanes;
  // Below 32 channels the transforms cost as much as the GEMMs save.
  return kh == 3 && kw == 3 && stride == 1 && dilation == 1 && pad_top == 1 && pad_left == 1 &&
         cin >= 32 && cout >= 32 &&
         cin % lanes == 0 && cout % lanes == 0;
}

WinogradLayer pack_winograd(const float* weight, const float* bias, int cout, int cin, Simd simd) {
  // G of F(4x4, 3x3) with interpolation points 0, +-1, +-2, inf (Lavin & Gray 2015).
  static const double G[6][3] = {{1. / 4, 0, 0},          {-1. / 6, -1. / 6, -1. / 6},
                                 {-1. / 6, 1. / 6, -1. / 6}, {1. / 24, 1. / 12, 1. / 6},
                                 {1. / 24, -1. / 12, 1. / 6}, {0, 0, 1}};
  std::vector<std::vector<float>> taps(kWinogradTaps, std::vector<float>(size_t(cout) * cin));
  for (int co = 0; co < cout; ++co)
    for (int ci = 0; ci < cin; ++ci) {
      const float* g = weight + (int64_t(co) * cin + ci) * 9;
      double gt[6][3];  // G g
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 3; ++j)
          gt[i][j] = G[i][0] * g[0 * 3 + j] + G[i][1] * g[1 * 3 + j] + G[i][2] * g[2 * 3 + j];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const double u = gt[i][0] * G[j][0] + gt[i][1] * G[j][1] + gt[i][2] * G[j][2];
          taps[size_t(i * 6 + j)][size_t(co) * cin + ci] = float(u);
        }
    }
  WinogradLayer L;
  L.epilogue = pack_conv(weight, bias, cout, cin, 0, 0, 1, 1, 1, 1, simd);
  for (const auto& u : taps) L.gemm.push_back(pack_conv(u.data(), nullptr, cout, cin, 1, 1, 1, 1, 0, 0, simd));
  return L;
}

size_t winograd_scratch_floats(int cin, int cout) {
  return size_t(kWinogradTaps) * (size_t(kWinogradTileBlock) * (cin + cout) + cin);  // V, M, patch
}

}  // namespace fastsr
