#include "conv_config.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>

#include "fma_peak.h"

namespace fastsr {

namespace {

#if FASTSR_HAS_X86_KERNELS
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

// Advanced SIMD is part of the AArch64 baseline.
bool always() { return true; }

std::vector<ConvConfig> make_configs() {
  std::vector<ConvConfig> table;
#if FASTSR_HAS_X86_KERNELS
  table.push_back({Simd::Avx512, has_avx512, 8, Simd::Avx2, conv2d_avx512, winograd_avx512,
                   fma_chains_avx512});
  table.push_back({Simd::Avx2, has_avx2, 0, Simd::Avx2, conv2d_avx2, winograd_avx2,
                   fma_chains_avx2});
#endif
#if FASTSR_HAS_NEON_KERNELS
  table.push_back({Simd::Neon, always, 0, Simd::Neon, conv2d_neon, winograd_neon,
                   fma_chains_neon});
#endif
  table.push_back({Simd::Portable, always, 0, Simd::Portable, conv2d_portable,
                   winograd_portable, fma_chains_portable});
  return table;
}

// One thread's FMA throughput at a level, best of 5 short runs, measured once per process.
double fma_rate(const ConvConfig& config) {
  static std::mutex lock;
  static std::map<Simd, double> rates;
  const std::lock_guard<std::mutex> hold(lock);
  auto known = rates.find(config.simd);
  if (known != rates.end()) return known->second;
  double best = 0;
  for (int round = 0; round < 5; ++round) best = std::max(best, fma_gflops(config, 1, 2e-4));
  return rates[config.simd] = best;
}

}  // namespace

// A wide vector pays for its padded lanes where the CPU runs it at full width: a Xeon's
// 512-bit FMAs do twice the work of its 256-bit ones, Zen 4's (two 256-bit halves) the
// same, so a 24-channel conv packed for AVX-512 (two 16-lane vectors) ran fast_x2 1.15x
// slower than for AVX2 (three 8-lane ones) there. Cost: padded channels / FMA rate.
Simd packing_simd(Simd simd, int cout) {
  const ConvConfig& wide = conv_config(simd);
  if (wide.narrow_cout == 0) return simd;
  if (cout <= wide.narrow_cout) return wide.narrow_to;
  const int lanes = tile_shape(simd).lanes, narrow_lanes = tile_shape(wide.narrow_to).lanes;
  if (cout % lanes == 0) return simd;
  const auto padded = [cout](int l) { return double((cout + l - 1) / l * l); };
  const double wide_cost = padded(lanes) / fma_rate(wide);
  const double narrow_cost = padded(narrow_lanes) / fma_rate(conv_config(wide.narrow_to));
  return narrow_cost < wide_cost ? wide.narrow_to : simd;
}

const std::vector<ConvConfig>& conv_configs() {
  static const std::vector<ConvConfig> table = make_configs();
  return table;
}

const ConvConfig& conv_config(Simd simd) {
  for (const ConvConfig& c : conv_configs())
    if (c.simd == simd) return c;
  throw std::invalid_argument("this build has no kernels for SIMD level '" + simd_name(simd) + "'");
}

}  // namespace fastsr
