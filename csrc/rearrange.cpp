#include "rearrange.h"

namespace fastsr {

void pixel_shuffle(const View& x, int r, const View& out) {
  const int rows = x.n * x.h;
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int n = row / x.h, y = row % x.h;
    for (int px = 0; px < x.w; ++px) {
      const float* src = x.at(n, y, px);
      for (int i = 0; i < r; ++i)
        for (int j = 0; j < r; ++j) {
          float* dst = out.at(n, y * r + i, px * r + j);
          for (int co = 0; co < out.c; ++co) dst[co] = src[co * r * r + i * r + j];
        }
    }
  }
}

void global_avg_pool(const View& x, const View& out) {
  // Channels are split over threads, so each sum is accumulated in one fixed order.
  const double inv = 1.0 / (double(x.h) * x.w);
#pragma omp for schedule(static) collapse(2)
  for (int n = 0; n < x.n; ++n)
    for (int c = 0; c < x.c; ++c) {
      double sum = 0.0;
      for (int y = 0; y < x.h; ++y)
        for (int px = 0; px < x.w; ++px) sum += x.at(n, y, px)[c];
      out.at(n, 0, 0)[c] = float(sum * inv);
    }
}

}  // namespace fastsr
