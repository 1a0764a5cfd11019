#include "simd.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "conv_config.h"

namespace fastsr {

std::vector<Simd> supported_simd() {
  std::vector<Simd> levels;
  for (const ConvConfig& c : conv_configs())
    if (c.supported()) levels.push_back(c.simd);
  return levels;
}

Simd detected_simd() { return supported_simd().front(); }

static bool is_supported(Simd level) {
  const std::vector<Simd> levels = supported_simd();
  return std::find(levels.begin(), levels.end(), level) != levels.end();
}

std::string simd_name(Simd level) {
  switch (level) {
    case Simd::Avx512: return "avx512";
    case Simd::Avx2: return "avx2";
    case Simd::Neon: return "neon";
    default: return "portable";
  }
}

Simd parse_simd(const std::string& name) {
  for (Simd level : {Simd::Portable, Simd::Avx2, Simd::Avx512, Simd::Neon})
    if (name == simd_name(level)) return level;
  throw std::invalid_argument("unknown SIMD level '" + name +
                              "', expected one of: portable, avx2, avx512, neon");
}

static Simd initial_simd() {
  const char* forced = std::getenv("FASTSR_SIMD");
  if (forced == nullptr || *forced == '\0') return detected_simd();
  Simd wanted = parse_simd(forced);
  return is_supported(wanted) ? wanted : detected_simd();
}

static Simd& current() {
  static Simd level = initial_simd();
  return level;
}

Simd active_simd() { return current(); }

void set_simd(Simd level) {
  if (!is_supported(level))
    throw std::invalid_argument("SIMD level '" + simd_name(level) +
                                "' is not supported by this CPU (best: " +
                                simd_name(detected_simd()) + ")");
  current() = level;
}

}  // namespace fastsr
