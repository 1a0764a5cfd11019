// Integer-factor upscaling with PyTorch F.interpolate semantics (align_corners=False;
// bicubic a=-0.75 with the border clamped; bilinear; nearest), done as two separable
// passes through a scratch image.
#pragma once
#include <string>
#include <vector>

#include "view.h"

namespace fastsr {

enum class ResizeMode { Nearest, Bilinear, Bicubic };
ResizeMode parse_resize_mode(const std::string& name);

// For each output coordinate: `taps` input indices and their weights.
struct ResizeTaps {
  int taps = 1;
  std::vector<int> index;
  std::vector<float> weight;
};
ResizeTaps make_taps(ResizeMode mode, int in_size, int factor);

struct ResizeJob {
  View x, out;
  View scratch;  // x.n x x.h x out.w x c, rows resized horizontally
  const ResizeTaps* along_w;
  const ResizeTaps* along_h;
};

// Called inside an OpenMP parallel region.
void resize(const ResizeJob& job);

}  // namespace fastsr
