#include "rearrange.h"

#include <omp.h>

#include <cstddef>
#include <cstdint>

namespace fastsr {

void pixel_shuffle(const View& x, int r, const View& out, const View* skip) {
  const int rows = x.n * x.h;
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int n = row / x.h, y = row % x.h;
    for (int px = 0; px < x.w; ++px) {
      const float* src = x.at(n, y, px);
      for (int i = 0; i < r; ++i)
        for (int j = 0; j < r; ++j) {
          float* dst = out.at(n, y * r + i, px * r + j);
          if (skip == nullptr) {
            for (int co = 0; co < out.c; ++co) dst[co] = src[co * r * r + i * r + j];
            continue;
          }
          const float* add = skip->at(n, y * r + i, px * r + j);
          for (int co = 0; co < out.c; ++co) dst[co] = src[co * r * r + i * r + j] + add[co];
        }
    }
  }
}

void pixel_unshuffle(const View& x, int r, const View& out) {
  // Output channels are written in order (c*r*r + i*r + j); the r*r source pixels of a
  // block are read as r*r channel runs that advance together.
  const int rows = out.n * out.h, channels = x.c, taps = r * r;
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int n = row / out.h, y = row % out.h;
    for (int px = 0; px < out.w; ++px) {
      float* dst = out.at(n, y, px);
      for (int i = 0; i < r; ++i)
        for (int j = 0; j < r; ++j) {
          const float* src = x.at(n, y * r + i, px * r + j);
          float* tap = dst + i * r + j;
#pragma omp simd
          for (int c = 0; c < channels; ++c) tap[c * taps] = src[c];
        }
    }
  }
}

void global_avg_pool(const View& x, const View& out, std::vector<double>& partial) {
  // Each thread sums its rows into its own slot, read in one pass over memory; the slots
  // are then added in thread order, so the result does not depend on timing.
  const int threads = omp_get_num_threads();
  const size_t sums = size_t(x.n) * x.c;
#pragma omp single
  partial.assign(size_t(threads) * sums, 0.0);
  double* mine = partial.data() + size_t(omp_get_thread_num()) * sums;
  const int rows = x.n * x.h;
#pragma omp for schedule(static)
  for (int row = 0; row < rows; ++row) {
    const int n = row / x.h, y = row % x.h;
    double* acc = mine + size_t(n) * x.c;
    for (int px = 0; px < x.w; ++px) {
      const float* p = x.at(n, y, px);
      for (int c = 0; c < x.c; ++c) acc[c] += p[c];
    }
  }
  const double inv = 1.0 / (double(x.h) * x.w);
#pragma omp for schedule(static)
  for (int64_t i = 0; i < int64_t(sums); ++i) {
    double total = 0.0;
    for (int t = 0; t < threads; ++t) total += partial[size_t(t) * sums + size_t(i)];
    out.at(int(i / x.c), 0, 0)[i % x.c] = float(total * inv);
  }
}

}  // namespace fastsr
