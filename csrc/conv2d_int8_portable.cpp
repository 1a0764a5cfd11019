// Int8 direct convolution, portable build (off x86, or FASTSR_SIMD=portable).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_int8.h"
#include "winograd_int8.h"

namespace fastsr {
namespace {

#include "ops_portable.inc"
#include "microkernel.inc"

struct I8 : Int8Tile<Int8Isa::Portable> {
  struct Acc {
    int32_t v[8];
  };
  struct X {
    int32_t b[4];
  };
  struct W {
    int8_t v[32];
  };
  static Acc zero() { return Acc{}; }
  static X broadcast4(const uint8_t* p) { return X{{p[0], p[1], p[2], p[3]}}; }
  static W load_w(const int8_t* p) {
    W w;
    std::memcpy(w.v, p, sizeof w.v);
    return w;
  }
  static Acc dot(Acc acc, const X& x, const W& w) {
    for (int k = 0; k < V; ++k)
      for (int i = 0; i < 4; ++i) acc.v[k] += x.b[i] * w.v[4 * k + i];
    return acc;
  }
  static Acc load(const int32_t* p) {
    Acc a;
    std::memcpy(a.v, p, sizeof a.v);
    return a;
  }
  static Acc load_u8(const uint8_t* p) {
    Acc a;
    for (int k = 0; k < V; ++k) a.v[k] = p[k];
    return a;
  }
  static Acc sub(Acc a, const Acc& b) {
    for (int k = 0; k < V; ++k) a.v[k] -= b.v[k];
    return a;
  }
  static Lanes8 to_float(const Acc& a) { return Ops::map([&](int k) { return float(a.v[k]); }); }
  static Acc to_int(const Lanes8& f) {
    Acc a;
    // Only clamped [0, 255] values come here: 1.5 * 2^23 rounds them ties-to-even.
    for (int k = 0; k < V; ++k) a.v[k] = int32_t((f.v[k] + 12582912.f) - 12582912.f);
    return a;
  }
  static void store(int32_t* p, const Acc& a) { std::memcpy(p, a.v, sizeof a.v); }
  static void store_u8(uint8_t* p, const Acc& a, int n) {
    for (int k = 0; k < n; ++k) p[k] = uint8_t(a.v[k]);
  }
};

// 16 int16 lanes for the int8 Winograd input transform; n is always 16 (the channels are a
// multiple of 16).
struct I16 {
  struct T {
    int16_t v[16];
  };
  static constexpr int lanes = 16;
  template <class F>
  static T map(F f) {
    T r;
    for (int k = 0; k < lanes; ++k) r.v[k] = int16_t(f(k));
    return r;
  }
  static T load_u8(const uint8_t* p, int) { return map([&](int k) { return p[k]; }); }
  static T set1(int16_t v) { return map([&](int) { return v; }); }
  static T add(const T& a, const T& b) { return map([&](int k) { return a.v[k] + b.v[k]; }); }
  static T sub(const T& a, const T& b) { return map([&](int k) { return a.v[k] - b.v[k]; }); }
  static T shl(const T& a, int s) { return map([&](int k) { return a.v[k] * (1 << s); }); }
  static T mulhrs(const T& a, const T& b) {  // vpmulhrsw: (a * b + 2^14) >> 15, arithmetic
    return map([&](int k) { return (int32_t(a.v[k]) * b.v[k] + (1 << 14)) >> 15; });
  }
  static T adds(const T& a, const T& b) {
    return map([&](int k) { return std::clamp(a.v[k] + b.v[k], -32768, 32767); });
  }
  static void store_u8(uint8_t* p, const T& a, int) {
    for (int k = 0; k < lanes; ++k) p[k] = uint8_t(std::clamp(int(a.v[k]), 0, 255));
  }
};

#include "conv2d_int8_kernel.inc"
#include "winograd_int8_kernel.inc"

}  // namespace

void conv2d_int8_portable(const Int8ConvJob& job) { run_conv_int8(job); }
void quantize_u8_portable(const QuantizeJob& job) { run_quantize_u8(job); }
void winograd_int8_portable(const Int8WinogradJob& job) { run_winograd_int8(job); }

}  // namespace fastsr
