// The machine's FMA throughput, measured with independent FMA chains held in registers:
// the yardstick for "% of peak" in the benchmarks.
#pragma once
#include <cstdint>

namespace fastsr {

// Each returns the number of floating-point operations it performed.
double fma_chains_avx512(int64_t iterations);
double fma_chains_avx2(int64_t iterations);
double fma_chains_neon(int64_t iterations);
double fma_chains_portable(int64_t iterations);

// GFLOP/s over `threads` threads with the active SIMD level.
double fma_peak_gflops(int threads, double seconds);

}  // namespace fastsr
