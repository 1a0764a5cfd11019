#include "simd.h"

#include <cstdlib>
#include <stdexcept>

namespace fastsr {

Simd detected_simd() {
#if !defined(FASTSR_PORTABLE_ONLY) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Simd::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Simd::Avx2;
#endif
  return Simd::Portable;
}

std::string simd_name(Simd level) {
  switch (level) {
    case Simd::Avx512: return "avx512";
    case Simd::Avx2: return "avx2";
    default: return "portable";
  }
}

Simd parse_simd(const std::string& name) {
  if (name == "avx512") return Simd::Avx512;
  if (name == "avx2") return Simd::Avx2;
  if (name == "portable") return Simd::Portable;
  throw std::invalid_argument("unknown SIMD level '" + name +
                              "', expected one of: portable, avx2, avx512");
}

static Simd initial_simd() {
  Simd best = detected_simd();
  const char* forced = std::getenv("FASTSR_SIMD");
  if (forced == nullptr || *forced == '\0') return best;
  Simd wanted = parse_simd(forced);
  return wanted < best ? wanted : best;
}

static Simd& current() {
  static Simd level = initial_simd();
  return level;
}

Simd active_simd() { return current(); }

void set_simd(Simd level) {
  if (level > detected_simd())
    throw std::invalid_argument("SIMD level '" + simd_name(level) +
                                "' is not supported by this CPU (best: " +
                                simd_name(detected_simd()) + ")");
  current() = level;
}

}  // namespace fastsr
