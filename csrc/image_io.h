// The frame's way in and out of a Program: the caller's image (uint8, uint16, float16,
// float32 or float64, any strides) becomes the model input in [0, 1], and the model output
// goes back clamped, rounded and in the caller's dtype, in one threaded pass each way.
// Y-channel models see BT.601 luma; their chroma is upscaled by bicubic and merged back.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "isa_clones.h"
#include "resize.h"
#include "view.h"

namespace fastsr {

enum class PixelType { U8, U16, F16, F32, F64 };

// Clamp to [0, 1] on the bit pattern: a float >= +0 orders as its int32 bits and a negative
// one (or -0) reads as a negative int, so two integer min/max vectorise to two instructions.
// GCC turns the float std::min/max form into compare-and-blend chains (eight instructions)
// to keep their NaN and -0 rules; here a NaN clamps to 0 or 1 by its sign bit.
FASTSR_INLINE float unit(float v) {
  int32_t bits;
  std::memcpy(&bits, &v, 4);
  bits = std::min(std::max(bits, int32_t(0)), int32_t(0x3f800000));  // the bits of 1.0f
  std::memcpy(&v, &bits, 4);
  return v;
}

// Nearest integer, ties to even (as torch.round), for 0 <= v < 2^22, without libm: adding
// 1.5 * 2^23 leaves no fraction bits, so the FPU's own rounding does the work.
FASTSR_INLINE float round_even(float v) {
  const float magic = 12582912.f;
  return (v + magic) - magic;
}

// round_even as an int, without a float -> int conversion: after adding 1.5 * 2^23 the
// low mantissa bits hold the integer.
FASTSR_INLINE int32_t round_to_int(float v) {
  const float shifted = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return bits - 0x4b400000;  // the bits of 1.5 * 2^23
}

// A window onto caller memory, N x H x W x C, strides in bytes (any sign).
struct Image {
  char* data = nullptr;
  PixelType type = PixelType::U8;
  int n = 0, h = 0, w = 0, c = 0;
  int64_t img = 0, row = 0, pix = 0, ch = 0;
};

// What the model sees. Rgb: 3 channels (a grey image is fed as R = G = B and comes back as
// their mean). Y: BT.601 luma (grey: the luma of R = G = B) with the chroma kept aside.
enum class ColorModel { Rgb, Y };

// RGB -> YCbCr in [0, 1]: ycc = forward * rgb + offset; back: rgb = inverse * (ycc - offset).
struct YCbCr {
  float forward[9], offset[3], inverse[9];
};

// `full`: the integer value of full intensity (255, 65535), or 0 for floats in [0, 1].
// chroma: (n, h, w, 2) Cb/Cr of a colour image for a Y model, else null.
// Called inside an OpenMP parallel region.
void read_frame(const Image& src, double full, ColorModel model, const YCbCr& ycc,
                const View& input, const View* chroma);

// out (the model output) from row `top`, column `left` on, into dst; chroma: for a colour
// image through a Y model, the bicubic upscale of its Cb/Cr (both passes run here, row by
// row through a WidthRing; chroma->scratch is not used), else null.
struct FrameWrite {
  View out;
  int top, left;
  const ResizeJob* chroma;
  ColorModel model;
  YCbCr ycc;
  double full;
  Image dst;
};
// Rows [begin, end) of dst's n x h, on the calling thread. ring: the thread's own over
// frame.chroma (its rows are kept from call to call), null when chroma is.
void write_frame_rows(const FrameWrite& frame, WidthRing* ring, int64_t begin, int64_t end);
// Every row, split over the threads of the enclosing OpenMP parallel region.
void write_frame(const FrameWrite& frame);

}  // namespace fastsr
