// Integer-factor upscaling with PyTorch F.interpolate semantics (align_corners=False;
// bicubic a=-0.75 with the border clamped; bilinear; nearest), done as two separable
// passes through a scratch image.
#pragma once
#include <vector>

#include "view.h"

namespace fastsr {

enum class ResizeMode { Nearest, Bilinear, Bicubic };
// Keys' cubic convolution with a = -0.75, as PyTorch's upsample_bicubic2d.
constexpr float kCubicA = -0.75f;

// For each output coordinate: `taps` input indices and their weights.
struct ResizeTaps {
  int taps = 1;
  std::vector<int> index;
  std::vector<float> weight;
  // Output o = factor * i + phase reads inputs i + shift[phase] + k (k < taps) with the
  // same weights for every i in [first[phase], last[phase]): the bulk of each phase,
  // which the horizontal pass computes as dense runs.
  int factor = 1;
  std::vector<int> shift, first, last;
};
// offset: input samples added to every source coordinate (chroma siting; 0 is
// F.interpolate's).
ResizeTaps make_taps(ResizeMode mode, int in_size, int factor, float offset = 0.f);

struct ResizeJob {
  View x, out;
  View scratch;  // x.n x x.h x out.w x c, rows resized horizontally
  const ResizeTaps* along_w;
  const ResizeTaps* along_h;
};

// Called inside an OpenMP parallel region.
void resize(const ResizeJob& job);
// The two passes alone. resize_width: job.scratch from job.x (called inside an OpenMP
// parallel region). blend_row: row `oy` of the vertical pass, the dense scratch rows of
// image `n` blended into dst.
void resize_width(const ResizeJob& job);
void blend_row(const ResizeJob& job, int n, int oy, float* dst);

// The width pass on demand, for one thread's pass over output rows in order: each source
// row is resized when an output row first needs it, into a ring of rows that stays in
// cache, instead of all rows through job.scratch (megabytes written, then read back).
// Construct one per thread and pass (its rows of an earlier frame are stale).
struct WidthRing {
  static constexpr int kRows = 8;  // > the 4 bicubic taps of a row plus their spread
  explicit WidthRing(const ResizeJob& job);
  const ResizeJob& job;
  float* rows;  // kRows rows of job.scratch's width, in this thread's scratch
  int image[kRows], row[kRows];
};
// blend_row through the ring: `count` floats from float `first` of the row.
void blend_row(WidthRing& ring, int n, int oy, float* dst, int64_t first, int64_t count);

}  // namespace fastsr
