#include "resize.h"

#include "isa_clones.h"

#include <algorithm>
#include <cstdint>
#include <cmath>

namespace fastsr {

namespace {

float cubic_near(float x) { return ((kCubicA + 2) * x - (kCubicA + 3)) * x * x + 1; }
float cubic_far(float x) { return ((kCubicA * x - 5 * kCubicA) * x + 8 * kCubicA) * x - 4 * kCubicA; }

}  // namespace

ResizeTaps make_taps(ResizeMode mode, int in_size, int factor) {
  const int out_size = in_size * factor;
  const float scale = 1.f / float(factor);
  ResizeTaps t;
  t.taps = mode == ResizeMode::Bicubic ? 4 : mode == ResizeMode::Bilinear ? 2 : 1;
  t.index.resize(size_t(out_size) * t.taps);
  t.weight.resize(size_t(out_size) * t.taps);
  auto clamp = [in_size](int i) { return std::min(std::max(i, 0), in_size - 1); };
  for (int o = 0; o < out_size; ++o) {
    int* idx = &t.index[size_t(o) * t.taps];
    float* w = &t.weight[size_t(o) * t.taps];
    const float src = scale * (float(o) + 0.5f) - 0.5f;  // align_corners=False
    if (mode == ResizeMode::Nearest) {
      idx[0] = std::min(o / factor, in_size - 1);
      w[0] = 1.f;
    } else if (mode == ResizeMode::Bilinear) {
      const float s = std::max(src, 0.f);
      const int i0 = int(s);
      const float l1 = s - float(i0);
      idx[0] = i0, idx[1] = i0 + (i0 < in_size - 1 ? 1 : 0);
      w[0] = 1.f - l1, w[1] = l1;
    } else {
      const int i0 = int(std::floor(src));
      const float f = src - float(i0);
      const float ws[4] = {cubic_far(f + 1), cubic_near(f), cubic_near(1 - f), cubic_far(2 - f)};
      for (int k = 0; k < 4; ++k) idx[k] = clamp(i0 - 1 + k), w[k] = ws[k];
    }
  }
  return t;
}

namespace {

// One output pixel of the horizontal pass: TAPS weighted input pixels, channel by channel.
template <int TAPS>
FASTSR_INLINE void blend_pixels(const float* const* src, const float* w, int channels, float* dst) {
  for (int ch = 0; ch < channels; ++ch) {
    float acc = w[0] * src[0][ch];
    for (int k = 1; k < TAPS; ++k) acc += w[k] * src[k][ch];
    dst[ch] = acc;
  }
}

// A run of `count` floats blended from TAPS rows (vectorises: the rows are contiguous).
template <int TAPS>
FASTSR_INLINE void blend_rows(const float* const* src, const float* w, int64_t count, float* dst) {
  for (int64_t i = 0; i < count; ++i) {
    float acc = w[0] * src[0][i];
    for (int k = 1; k < TAPS; ++k) acc += w[k] * src[k][i];
    dst[i] = acc;
  }
}

// CH: the channel count when it is small and known (unrolled), else 0 (x.c at run time).
template <int TAPS, int CH>
FASTSR_INLINE void resize_width_rows(const ResizeJob& job) {
  const View &x = job.x, &tmp = job.scratch;
  const int c = CH ? CH : x.c;
  const int in_rows = x.n * x.h;
  const int* index = job.along_w->index.data();
  const float* weight = job.along_w->weight.data();
#pragma omp for schedule(static)
  for (int r = 0; r < in_rows; ++r) {
    const int n = r / x.h, y = r % x.h;
    const float* line = x.at(n, y, 0);
    float* dst = tmp.at(n, y, 0);
    for (int ox = 0; ox < tmp.w; ++ox, dst += tmp.pix) {
      const float* src[TAPS];
      for (int k = 0; k < TAPS; ++k) src[k] = line + index[ox * TAPS + k] * x.pix;
      blend_pixels<TAPS>(src, weight + ox * TAPS, c, dst);
    }
  }
}

template <int TAPS>
FASTSR_INLINE void resize_width_taps(const ResizeJob& job) {
  switch (job.x.c) {  // the chroma of Y models (2) and RGB skips (3)
    case 2: resize_width_rows<TAPS, 2>(job); break;
    case 3: resize_width_rows<TAPS, 3>(job); break;
    default: resize_width_rows<TAPS, 0>(job);
  }
}

template <int TAPS>
FASTSR_INLINE void blend_row_taps(const ResizeJob& job, int n, int oy, float* dst) {
  const int* idx = &job.along_h->index[size_t(oy) * TAPS];
  const float* src[TAPS];
  for (int k = 0; k < TAPS; ++k) src[k] = job.scratch.at(n, idx[k], 0);
  blend_rows<TAPS>(src, &job.along_h->weight[size_t(oy) * TAPS],
                   int64_t(job.scratch.w) * job.scratch.c, dst);
}

template <int TAPS>
FASTSR_INLINE void resize_taps(const ResizeJob& job) {
  resize_width_taps<TAPS>(job);
  const View &out = job.out;
  const int c = out.c;
  const int out_rows = out.n * out.h;
  const bool packed = out.pix == c;  // the scratch rows are always packed
#pragma omp for schedule(static)
  for (int r = 0; r < out_rows; ++r) {
    const int n = r / out.h, oy = r % out.h;
    if (packed) {
      blend_row_taps<TAPS>(job, n, oy, out.at(n, oy, 0));
      continue;
    }
    const int* idx = &job.along_h->index[size_t(oy) * TAPS];
    const float* w = &job.along_h->weight[size_t(oy) * TAPS];
    const float* src[TAPS];
    for (int k = 0; k < TAPS; ++k) src[k] = job.scratch.at(n, idx[k], 0);
    for (int ox = 0; ox < out.w; ++ox) {
      const float* px[TAPS];
      for (int k = 0; k < TAPS; ++k) px[k] = src[k] + int64_t(ox) * c;
      blend_pixels<TAPS>(px, w, c, out.at(n, oy, ox));
    }
  }
}

}  // namespace

FASTSR_ISA_CLONES
void resize_width(const ResizeJob& job) {
  switch (job.along_w->taps) {
    case 1: resize_width_taps<1>(job); break;
    case 2: resize_width_taps<2>(job); break;
    default: resize_width_taps<4>(job);
  }
}

FASTSR_ISA_CLONES
void blend_row(const ResizeJob& job, int n, int oy, float* dst) {
  switch (job.along_h->taps) {
    case 1: blend_row_taps<1>(job, n, oy, dst); break;
    case 2: blend_row_taps<2>(job, n, oy, dst); break;
    default: blend_row_taps<4>(job, n, oy, dst);
  }
}

FASTSR_ISA_CLONES
void resize(const ResizeJob& job) {
  switch (job.along_w->taps) {
    case 1: resize_taps<1>(job); break;
    case 2: resize_taps<2>(job); break;
    default: resize_taps<4>(job);
  }
}

}  // namespace fastsr
