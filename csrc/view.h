// A window onto an NHWC tensor: channel stride 1, any pixel/row/image stride (in
// elements), so a tensor can be a channel slice of a wider buffer (concat without a copy)
// or the interior of a buffer with a zero border (convolution padding without bounds
// checks). float32 for the fp32 kernels; uint8 and bf16 for the int8 and bf16 layers.
#pragma once
#include <cstdint>

namespace fastsr {

template <class T>
struct NhwcView {
  T* data = nullptr;  // element (image 0, row 0, column 0, channel 0)
  int n = 0, h = 0, w = 0, c = 0;
  int64_t pix = 0;  // elements between horizontally neighbouring pixels
  int64_t row = 0;  // elements between vertically neighbouring pixels
  int64_t img = 0;  // elements between images
  int pad = 0;      // border around the buffer, in pixels (readable by convolutions)

  T* at(int b, int y, int x) const { return data + b * img + y * row + x * pix; }
  bool dense() const { return pix == c && row == int64_t(w) * c; }
};

using View = NhwcView<float>;

}  // namespace fastsr
