// Run-time choice of the SIMD level the kernels use.
#pragma once
#include <string>

namespace fastsr {

enum class Simd { Portable = 0, Avx2 = 1, Avx512 = 2 };

// Best level this CPU supports, capped by FASTSR_SIMD=portable|avx2|avx512 if set.
Simd active_simd();
Simd detected_simd();
void set_simd(Simd level);  // throws std::invalid_argument above detected_simd()
std::string simd_name(Simd level);
Simd parse_simd(const std::string& name);

}  // namespace fastsr
