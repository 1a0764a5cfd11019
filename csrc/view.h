// A window onto an NHWC float32 tensor: channel stride 1, any pixel/row/image stride,
// so a tensor can be a channel slice of a wider buffer (concat without a copy) or the
// interior of a buffer with a zero border (convolution padding without bounds checks).
#pragma once
#include <cstdint>

namespace fastsr {

struct View {
  float* data = nullptr;  // element (image 0, row 0, column 0, channel 0)
  int n = 0, h = 0, w = 0, c = 0;
  int64_t pix = 0;  // floats between horizontally neighbouring pixels
  int64_t row = 0;  // floats between vertically neighbouring pixels
  int64_t img = 0;  // floats between images
  int pad = 0;      // zero border around the buffer, in pixels (readable by convolutions)

  float* at(int b, int y, int x) const { return data + b * img + y * row + x * pix; }
  bool dense() const { return pix == c && row == int64_t(w) * c; }
};

}  // namespace fastsr
