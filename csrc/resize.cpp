#include "resize.h"

#include "isa_clones.h"
#include "scratch.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>

namespace fastsr {

namespace {

float cubic_near(float x) { return ((kCubicA + 2) * x - (kCubicA + 3)) * x * x + 1; }
float cubic_far(float x) { return ((kCubicA * x - 5 * kCubicA) * x + 8 * kCubicA) * x - 4 * kCubicA; }

// Fills t.shift/first/last: around the middle input of each phase, the widest range of
// inputs whose outputs have consecutive indices and bit-identical weights (borders clamp
// their indices; a factor that is not a power of two may round weights differently).
void find_uniform_runs(ResizeTaps& t, int in_size, int factor) {
  const int T = t.taps;
  t.factor = factor;
  t.shift.assign(size_t(factor), 0);
  t.first.assign(size_t(factor), 0);
  t.last.assign(size_t(factor), 0);
  for (int p = 0; p < factor; ++p) {
    const int mid = in_size / 2;
    const int* ref_index = &t.index[size_t(factor * mid + p) * T];
    const float* ref_weight = &t.weight[size_t(factor * mid + p) * T];
    const int shift = ref_index[0] - mid;
    auto uniform = [&](int i) {
      const int* idx = &t.index[size_t(factor * i + p) * T];
      const float* w = &t.weight[size_t(factor * i + p) * T];
      for (int k = 0; k < T; ++k)
        if (idx[k] != i + shift + k || w[k] != ref_weight[k]) return false;
      return true;
    };
    if (!uniform(mid)) continue;  // an empty run: every output blends alone
    int lo = mid, hi = mid + 1;
    while (lo > 0 && uniform(lo - 1)) --lo;
    while (hi < in_size && uniform(hi)) ++hi;
    t.shift[size_t(p)] = shift, t.first[size_t(p)] = lo, t.last[size_t(p)] = hi;
  }
}

}  // namespace

ResizeTaps make_taps(ResizeMode mode, int in_size, int factor, float offset) {
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
    const float src = scale * (float(o) + 0.5f) - 0.5f + offset;  // align_corners=False
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
  find_uniform_runs(t, in_size, factor);
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

template <int TAPS>
FASTSR_INLINE void blend_output(const ResizeTaps& t, const float* line, int64_t pix, int c, int o,
                                float* dst) {
  const float* src[TAPS];
  for (int k = 0; k < TAPS; ++k) src[k] = line + t.index[size_t(o) * TAPS + k] * pix;
  blend_pixels<TAPS>(src, &t.weight[size_t(o) * TAPS], c, dst);
}

// One row of the horizontal pass over dense pixels: each phase's uniform run is a
// blend of TAPS shifted spans of the row (dense, so it vectorises, whatever the channel
// count), spread to every factor-th output pixel; the outputs near the borders blend alone.
template <int TAPS, int CH>
FASTSR_INLINE void resize_dense_row(const ResizeTaps& t, const float* line, int in_w, int c,
                                    float* dst) {
  const int f = t.factor;
  float* run = row_scratch(2, size_t(in_w) * c).data();
  for (int p = 0; p < f; ++p) {
    const int first = t.first[size_t(p)], last = t.last[size_t(p)];
    if (last > first) {
      const float* src[TAPS];
      for (int k = 0; k < TAPS; ++k) src[k] = line + int64_t(first + t.shift[size_t(p)] + k) * c;
      blend_rows<TAPS>(src, &t.weight[size_t(f * first + p) * TAPS], int64_t(last - first) * c,
                       run);
      for (int i = first; i < last; ++i)
        std::memcpy(dst + int64_t(f * i + p) * c, run + int64_t(i - first) * c,
                    sizeof(float) * size_t(CH ? CH : c));
    }
    for (int i = 0; i < in_w; ++i) {
      if (i == first && last > first) i = last;
      if (i < in_w) blend_output<TAPS>(t, line, c, c, f * i + p, dst + int64_t(f * i + p) * c);
    }
  }
}

// Row y of image n of the width pass into dst (a row of job.scratch's layout).
// CH: the channel count when it is small and known (unrolled), else 0 (x.c at run time).
template <int TAPS, int CH>
FASTSR_INLINE void width_pass_row(const ResizeJob& job, int n, int y, float* dst) {
  const View &x = job.x, &tmp = job.scratch;
  const int c = CH ? CH : x.c;
  const ResizeTaps& t = *job.along_w;
  const float* line = x.at(n, y, 0);
  if (x.pix == c && tmp.pix == c && t.factor * x.w == tmp.w) {
    resize_dense_row<TAPS, CH>(t, line, x.w, c, dst);
    return;
  }
  for (int ox = 0; ox < tmp.w; ++ox, dst += tmp.pix) blend_output<TAPS>(t, line, x.pix, c, ox, dst);
}

template <int TAPS, int CH>
FASTSR_INLINE void resize_width_rows(const ResizeJob& job) {
  const View& x = job.x;
  const int in_rows = x.n * x.h;
#pragma omp for schedule(static)
  for (int r = 0; r < in_rows; ++r) {
    const int n = r / x.h, y = r % x.h;
    width_pass_row<TAPS, CH>(job, n, y, job.scratch.at(n, y, 0));
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
FASTSR_INLINE void width_row_taps(const ResizeJob& job, int n, int y, float* dst) {
  switch (job.x.c) {
    case 2: width_pass_row<TAPS, 2>(job, n, y, dst); break;
    case 3: width_pass_row<TAPS, 3>(job, n, y, dst); break;
    default: width_pass_row<TAPS, 0>(job, n, y, dst);
  }
}

FASTSR_ISA_CLONES
void resize_width_row(const ResizeJob& job, int n, int y, float* dst) {
  switch (job.along_w->taps) {
    case 1: width_row_taps<1>(job, n, y, dst); break;
    case 2: width_row_taps<2>(job, n, y, dst); break;
    default: width_row_taps<4>(job, n, y, dst);
  }
}

// The ring's slot holding row y of image n, resized now if it holds another.
FASTSR_INLINE const float* ring_row(WidthRing& ring, int n, int y) {
  const int slot = y % WidthRing::kRows;
  float* row = ring.rows + int64_t(slot) * ring.job.scratch.w * ring.job.scratch.c;
  if (ring.image[slot] != n || ring.row[slot] != y) {
    resize_width_row(ring.job, n, y, row);
    ring.image[slot] = n, ring.row[slot] = y;
  }
  return row;
}

// `count` floats from float `first` of output row oy of the vertical pass, blended from
// the width-pass rows source(n, y) gives (job.scratch's, or a WidthRing's).
template <int TAPS, class Source>
FASTSR_INLINE void blend_row_taps(const ResizeTaps& along_h, Source&& source, int oy,
                                  int64_t first, int64_t count, float* dst) {
  const int* idx = &along_h.index[size_t(oy) * TAPS];
  const float* src[TAPS];
  for (int k = 0; k < TAPS; ++k) src[k] = source(idx[k]) + first;
  blend_rows<TAPS>(src, &along_h.weight[size_t(oy) * TAPS], count, dst);
}

template <class Source>
FASTSR_INLINE void blend_row_any(const ResizeTaps& along_h, Source&& source, int oy,
                                 int64_t first, int64_t count, float* dst) {
  switch (along_h.taps) {
    case 1: blend_row_taps<1>(along_h, source, oy, first, count, dst); break;
    case 2: blend_row_taps<2>(along_h, source, oy, first, count, dst); break;
    default: blend_row_taps<4>(along_h, source, oy, first, count, dst);
  }
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
      blend_row_taps<TAPS>(*job.along_h, [&](int y) { return job.scratch.at(n, y, 0); }, oy, 0,
                           int64_t(out.w) * c, out.at(n, oy, 0));
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
  blend_row_any(*job.along_h, [&](int y) { return job.scratch.at(n, y, 0); }, oy, 0,
                int64_t(job.scratch.w) * job.scratch.c, dst);
}

WidthRing::WidthRing(const ResizeJob& job)
    : job(job),
      rows(row_scratch(3, size_t(kRows) * job.scratch.w * job.scratch.c).data()) {
  std::fill(image, image + kRows, -1);
  std::fill(row, row + kRows, -1);
}

FASTSR_ISA_CLONES
void blend_row(WidthRing& ring, int n, int oy, float* dst, int64_t first, int64_t count) {
  blend_row_any(*ring.job.along_h, [&](int y) { return ring_row(ring, n, y); }, oy, first, count,
                dst);
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
