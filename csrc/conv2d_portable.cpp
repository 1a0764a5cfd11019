// Plain C++ vectors of 8 floats: the compiler vectorises the lane loops for whatever
// baseline ISA it targets. Used off x86 and when FASTSR_SIMD=portable.
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "conv2d.h"

namespace fastsr {
namespace {

struct Lanes8 {
  float v[8];
};

struct Ops {
  static constexpr int V = 8;
  static constexpr int max_vectors = kernel_shape(Simd::Portable).max_vectors;
  static constexpr int pixels(int nv) { return nv >= 2 ? 4 : 8; }
  using Reg = Lanes8;
  template <class F>
  static Reg map(F f) {
    Reg r;
    for (int k = 0; k < V; ++k) r.v[k] = f(k);
    return r;
  }
  static Reg zero() { return map([](int) { return 0.f; }); }
  static Reg set1(float x) { return map([x](int) { return x; }); }
  static Reg load(const float* p) { return map([p](int k) { return p[k]; }); }
  static Reg broadcast(const float* p) { return set1(*p); }
  static Reg fma(Reg a, Reg b, Reg c) { return map([&](int k) { return a.v[k] * b.v[k] + c.v[k]; }); }
  static Reg add(Reg a, Reg b) { return map([&](int k) { return a.v[k] + b.v[k]; }); }
  static Reg mul(Reg a, Reg b) { return map([&](int k) { return a.v[k] * b.v[k]; }); }
  static Reg max(Reg a, Reg b) { return map([&](int k) { return std::max(a.v[k], b.v[k]); }); }
  static Reg min(Reg a, Reg b) { return map([&](int k) { return std::min(a.v[k], b.v[k]); }); }
  static void store(float* p, Reg v) { std::copy(v.v, v.v + V, p); }
  static Reg load_partial(const float* p, int n) {
    return map([p, n](int k) { return k < n ? p[k] : 0.f; });
  }
  static void store_partial(float* p, Reg v, int n) { std::copy(v.v, v.v + n, p); }
};

#include "conv2d_kernel.inc"

}  // namespace

void conv2d_portable(const ConvJob& job) { run_conv(job); }

}  // namespace fastsr
