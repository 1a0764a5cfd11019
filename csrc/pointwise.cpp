#include "pointwise.h"

#include <algorithm>
#include <cstdint>
#include <cmath>

#include "conv2d.h"

namespace fastsr {
namespace {

// tanh / sigmoid are the conv epilogue's, on the portable vectors: this file is built for
// the baseline ISA only, and the compiler vectorises the portable lane loops for it.
#include "ops_portable.inc"
#include "vmath.inc"

template <Ops::Reg (*f)(Ops::Reg)>
void map_vectors(const float* in, float* out, int n) {
  for (int c = 0; c < n; c += Ops::V) {
    const int lanes = std::min(Ops::V, n - c);
    Ops::store_partial(out + c, f(Ops::load_partial(in + c, lanes)), lanes);
  }
}

// Calls f(x_row_pixel_ptrs...) for every row; the lambdas loop over pixels and channels.
template <class F>
void for_rows(const View& out, F f) {
  const int rows = out.n * out.h;
#pragma omp for schedule(static)
  for (int r = 0; r < rows; ++r) f(r / out.h, r % out.h);
}

}  // namespace

void add(const View& a, const View& b, const View& out) {
  for_rows(out, [&](int n, int y) {
    for (int x = 0; x < out.w; ++x) {
      const float *pa = a.at(n, y, x), *pb = b.at(n, y, x);
      float* po = out.at(n, y, x);
      for (int c = 0; c < out.c; ++c) po[c] = pa[c] + pb[c];
    }
  });
}

void mul(const View& a, const View& b, const View& out, const View* skip) {
  const bool global = b.h == 1 && b.w == 1 && (a.h != 1 || a.w != 1);
  const bool one_channel = b.c == 1 && a.c != 1;
  for_rows(out, [&](int n, int y) {
    for (int x = 0; x < out.w; ++x) {
      const float* pa = a.at(n, y, x);
      const float* pb = global ? b.at(n, 0, 0) : b.at(n, y, x);
      float* po = out.at(n, y, x);
      if (skip) {
        const float* ps = skip->at(n, y, x);
        if (one_channel)
          for (int c = 0; c < out.c; ++c) po[c] = pa[c] * pb[0] + ps[c];
        else
          for (int c = 0; c < out.c; ++c) po[c] = pa[c] * pb[c] + ps[c];
      } else if (one_channel) {
        for (int c = 0; c < out.c; ++c) po[c] = pa[c] * pb[0];
      } else {
        for (int c = 0; c < out.c; ++c) po[c] = pa[c] * pb[c];
      }
    }
  });
}

void affine(const View& in, const float* scale, const float* shift, const View& out) {
  for_rows(out, [&](int n, int y) {
    for (int x = 0; x < out.w; ++x) {
      const float* pi = in.at(n, y, x);
      float* po = out.at(n, y, x);
      for (int c = 0; c < out.c; ++c) po[c] = pi[c] * scale[c] + shift[c];
    }
  });
}

void activation(const View& in, const PointwiseParams& p, const View& out) {
  for_rows(out, [&](int n, int y) {
    for (int x = 0; x < out.w; ++x) {
      const float* pi = in.at(n, y, x);
      float* po = out.at(n, y, x);
      switch (p.kind) {
        case Pointwise::Relu:
          for (int c = 0; c < out.c; ++c) po[c] = std::max(pi[c], 0.f);
          break;
        case Pointwise::Prelu:
          for (int c = 0; c < out.c; ++c) po[c] = pi[c] > 0.f ? pi[c] : pi[c] * p.slope[c];
          break;
        case Pointwise::LeakyRelu:
          for (int c = 0; c < out.c; ++c) po[c] = pi[c] > 0.f ? pi[c] : pi[c] * p.alpha;
          break;
        case Pointwise::Tanh: map_vectors<vector_tanh>(pi, po, out.c); break;
        case Pointwise::Sigmoid: map_vectors<vector_sigmoid>(pi, po, out.c); break;
        case Pointwise::Silu: map_vectors<vector_silu>(pi, po, out.c); break;
        case Pointwise::Clamp:
          for (int c = 0; c < out.c; ++c) po[c] = std::min(std::max(pi[c], p.lo), p.hi);
          break;
      }
    }
  });
}

void copy(const View& in, const View& out) {
  // Rows whose pixels are packed (pixel stride == channels) on both sides copy in one go;
  // this is the frame going in and out of a Program, so it matters for small networks.
  const bool packed_rows = in.pix == out.c && out.pix == out.c;
  for_rows(out, [&](int n, int y) {
    if (packed_rows) {
      std::copy(in.at(n, y, 0), in.at(n, y, 0) + int64_t(out.w) * out.c, out.at(n, y, 0));
      return;
    }
    for (int x = 0; x < out.w; ++x) {
      const float* src = in.at(n, y, x);
      float* dst = out.at(n, y, x);
      for (int c = 0; c < out.c; ++c) dst[c] = src[c];
    }
  });
}

}  // namespace fastsr
