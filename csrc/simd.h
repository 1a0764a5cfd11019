// Run-time choice of the SIMD level the kernels use.
#pragma once
#include <string>
#include <vector>

// Which ISA kernel files this build compiles (setup.py picks them by the same test).
#if !defined(FASTSR_PORTABLE_ONLY) && defined(__x86_64__)
#define FASTSR_HAS_X86_KERNELS 1
#endif
#if !defined(FASTSR_PORTABLE_ONLY) && defined(__aarch64__)
#define FASTSR_HAS_NEON_KERNELS 1
#endif

namespace fastsr {

enum class Simd { Portable, Avx2, Avx512, Neon };

// Best level this CPU supports, capped by FASTSR_SIMD=portable|avx2|avx512|neon if set
// (a level this CPU or build lacks leaves the best one).
Simd active_simd();
Simd detected_simd();
// Levels this build runs on this CPU, best first (conv_config.cpp's table, feature-tested).
std::vector<Simd> supported_simd();
void set_simd(Simd level);  // throws std::invalid_argument for a level not in supported_simd()
std::string simd_name(Simd level);
Simd parse_simd(const std::string& name);

}  // namespace fastsr
