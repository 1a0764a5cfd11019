// Direct convolution on NHWC views with the whole epilogue fused:
//   y = act(acc + bias) ; pixel-shuffle by the store addresses ; y += skip
// or, gated (SPAN's blocks; never with a shuffle): y = (y + skip) * (a * gate(y) + b).
// Weights are packed once (ConvLayer) for the SIMD width of the kernel that will run them.
#pragma once
#include <cstdint>
#include <vector>

#include "aligned.h"
#include "simd.h"
#include "view.h"

namespace fastsr {

enum class Act { None, Relu, Prelu, LeakyRelu, Tanh, Sigmoid, Silu };

// Output channels are computed in groups of up to `nvec` SIMD vectors; a group's packed
// weights are [ky][kx][ci][nvec * lanes], zero beyond the last real channel.
struct ConvGroup {
  int first;  // first output channel
  int count;  // real channels in the group
  int nvec;   // vectors the group spans
  int64_t offset;  // into ConvLayer::packed
};

struct ConvLayer {
  int cin = 0, cout = 0, kh = 0, kw = 0;
  int stride = 1, dilation = 1, pad_top = 0, pad_left = 0;
  Simd simd = Simd::Portable;  // kernel family the packing is for
  int lanes = 8;
  std::vector<ConvGroup> groups;
  AlignedFloats packed;
  AlignedFloats bias;   // cout rounded up to lanes
  AlignedFloats slope;  // PReLU slope per channel (same padding), when used
  Act act = Act::None;
  float alpha = 0.f;  // LeakyReLU
  int shuffle = 1;
  Act gate = Act::None;  // the gated skip, when not None
  float gate_scale = 1.f, gate_shift = 0.f;
};

// Register blocking of a kernel family: lanes per vector, vectors per output-channel
// group, and pixels per tile for 1..max_vectors vectors. The accumulators (pixels x
// vectors) plus the weight vectors fit the register file: 32 zmm for AVX-512, 16 ymm for
// AVX2, 32 q registers for NEON.
struct TileShape {
  int lanes, max_vectors;
  int pixels[4];
};
constexpr TileShape kTileShapes[] = {
    {8, 2, {8, 4}},            // Simd::Portable: what compilers vectorise well
    {8, 2, {12, 6}},           // Simd::Avx2
    {16, 4, {12, 12, 8, 6}},   // Simd::Avx512
    {4, 4, {12, 10, 7, 5}},    // Simd::Neon: 5 px x 16 ch = 20 accumulators + 4 weights + 5 inputs
};
constexpr const TileShape& tile_shape(Simd simd) { return kTileShapes[int(simd)]; }

// weight: OIHW (cout, cin, kh, kw) float32; bias: cout floats or null.
ConvLayer pack_conv(const float* weight, const float* bias, int cout, int cin, int kh, int kw,
                    int stride, int dilation, int pad_top, int pad_left, Simd simd);

// Output (and skip) address of conv channel c' at low-resolution pixel (0,0): with
// pixel-shuffle factor r, channel c' = co*r*r + i*r + j lands at (i, j), channel co.
// In elements of v (float, uint8 or bf16).
template <class T>
std::vector<int64_t> shuffle_offsets(const NhwcView<T>& v, int conv_channels, int r) {
  std::vector<int64_t> offsets(static_cast<size_t>(conv_channels));
  for (int c = 0; c < conv_channels; ++c) {
    const int co = c / (r * r), i = (c / r) % r, j = c % r;
    offsets[size_t(c)] = i * v.row + j * v.pix + co;
  }
  return offsets;
}

struct ConvJob {
  const ConvLayer* layer;
  View x, out;
  const View* skip;  // null when there is none
  const int64_t* out_offsets;
  const int64_t* skip_offsets;
  bool contiguous_store;  // shuffle 1: channel c' is at offset c' in out (and skip)
  int oh, ow;             // convolution output size (before the shuffle)
};

}  // namespace fastsr
