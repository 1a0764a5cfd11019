// Everything that differs between SIMD levels, as one table entry per ISA: the feature
// test, the register blocking (tile_shape), how packing narrows small layers, and the
// kernels compiled for it. Code above this table never names an ISA.
#pragma once
#include <cstdint>
#include <vector>

#include "conv2d.h"
#include "simd.h"
#include "winograd.h"

namespace fastsr {

struct ConvConfig {
  Simd simd;
  bool (*supported)();  // run-time feature test of this CPU
  // Layers of at most `narrow_cout` output channels are packed for `narrow_to` instead
  // (a wide vector would sit mostly idle), and so are those its vectors pad more than
  // they gain (packing_simd); narrow_cout 0: never.
  int narrow_cout;
  Simd narrow_to;
  // Rows [begin, end) of the job's n x oh conv output rows, on the calling thread.
  void (*direct)(const ConvJob&, int64_t begin, int64_t end);
  // Called inside an OpenMP parallel region: the work is split with `omp for`.
  void (*winograd)(const WinogradJob&);
  double (*fma_chains)(int64_t iterations);  // returns the floating-point operations done
};

// The levels this build has, best first; the last is the portable one.
const std::vector<ConvConfig>& conv_configs();
// Throws std::invalid_argument for a level this build lacks.
const ConvConfig& conv_config(Simd simd);
// The level a direct conv of `cout` output channels is packed for under level `simd`.
Simd packing_simd(Simd simd, int cout);

// Each ISA's kernels (conv2d_<isa>.cpp, built with that ISA's flags).
void conv2d_portable(const ConvJob& job, int64_t begin, int64_t end);
void winograd_portable(const WinogradJob& job);
void conv2d_avx2(const ConvJob& job, int64_t begin, int64_t end);
void winograd_avx2(const WinogradJob& job);
void conv2d_avx512(const ConvJob& job, int64_t begin, int64_t end);
void winograd_avx512(const WinogradJob& job);
void conv2d_neon(const ConvJob& job, int64_t begin, int64_t end);
void winograd_neon(const WinogradJob& job);

// Called inside an OpenMP parallel region: the rows are split with `omp for`.
inline void conv2d(const ConvJob& job) {
  const auto direct = conv_config(job.layer->simd).direct;
  const int64_t rows = int64_t(job.x.n) * job.oh;
#pragma omp for schedule(static)
  for (int64_t row = 0; row < rows; ++row) direct(job, row, row + 1);
}
inline void conv2d_rows(const ConvJob& job, int64_t begin, int64_t end) {
  conv_config(job.layer->simd).direct(job, begin, end);
}
inline void winograd(const WinogradJob& job) { conv_config(job.layer->epilogue.simd).winograd(job); }

}  // namespace fastsr
