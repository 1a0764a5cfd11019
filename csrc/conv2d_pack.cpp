#include <algorithm>

#include "conv2d.h"
#include "conv_config.h"

namespace fastsr {

ConvLayer pack_conv(const float* weight, const float* bias, int cout, int cin, int kh, int kw,
                    int stride, int dilation, int pad_top, int pad_left, Simd simd) {
  // Network tails and transposed-conv phases have few output channels.
  simd = packing_simd(simd, cout);
  const TileShape& shape = tile_shape(simd);
  ConvLayer L;
  L.cin = cin, L.cout = cout, L.kh = kh, L.kw = kw;
  L.stride = stride, L.dilation = dilation, L.pad_top = pad_top, L.pad_left = pad_left;
  L.simd = simd;
  L.lanes = shape.lanes;

  const int group_width = shape.lanes * shape.max_vectors;
  int64_t offset = 0;
  const int64_t taps = int64_t(kh) * kw * cin;
  for (int first = 0; first < cout; first += group_width) {
    int count = std::min(group_width, cout - first);
    int nvec = (count + shape.lanes - 1) / shape.lanes;
    L.groups.push_back({first, count, nvec, offset});
    offset += taps * nvec * shape.lanes;
  }
  L.packed = AlignedFloats(size_t(offset));
  for (const ConvGroup& g : L.groups) {
    const int width = g.nvec * shape.lanes;
    float* dst = L.packed.data() + g.offset;
    for (int ky = 0; ky < kh; ++ky)
      for (int kx = 0; kx < kw; ++kx)
        for (int ci = 0; ci < cin; ++ci, dst += width)
          for (int k = 0; k < g.count; ++k) {
            int co = g.first + k;
            dst[k] = weight[((int64_t(co) * cin + ci) * kh + ky) * kw + kx];
          }
  }
  const int padded = ((cout + shape.lanes - 1) / shape.lanes) * shape.lanes;
  L.bias = AlignedFloats(size_t(padded));
  if (bias != nullptr) std::copy(bias, bias + cout, L.bias.data());
  return L;
}

}  // namespace fastsr
