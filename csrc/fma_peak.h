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

struct ConvConfig;

// GFLOP/s of a level's FMA chains over `threads` threads, timed over at least `seconds`.
double fma_gflops(const ConvConfig& config, int threads, double seconds);
// The same with the active SIMD level.
double fma_peak_gflops(int threads, double seconds);

}  // namespace fastsr
