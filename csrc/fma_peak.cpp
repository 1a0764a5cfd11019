#include "fma_peak.h"

#include <omp.h>

#include "conv_config.h"

namespace fastsr {

double fma_chains_portable(int64_t iterations) {
  float acc[8][8];
  for (int k = 0; k < 8; ++k)
    for (int l = 0; l < 8; ++l) acc[k][l] = float(k + l);
  for (int64_t i = 0; i < iterations; ++i)
    for (int k = 0; k < 8; ++k)
      for (int l = 0; l < 8; ++l) acc[k][l] = acc[k][l] * 0.999999f + 1e-7f;
  volatile float sink = acc[3][5];
  (void)sink;
  return double(iterations) * 64 * 2;
}

double fma_gflops(const ConvConfig& config, int threads, double seconds) {
  config.fma_chains(1 << 15);  // wake the cores up
  int64_t iterations = 1 << 15;
  double flops = 0, elapsed = 0;
  while (elapsed < seconds) {
    flops = 0;
    const double start = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += config.fma_chains(iterations);
    elapsed = omp_get_wtime() - start;
    if (elapsed < seconds) iterations *= 2;
  }
  return flops / elapsed * 1e-9;
}

double fma_peak_gflops(int threads, double seconds) {
  return fma_gflops(conv_config(active_simd()), threads, seconds);
}

}  // namespace fastsr
