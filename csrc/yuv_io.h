// A video frame's way in and out of a Program as planes (Y, Cb, Cr; 8- to 16-bit codes;
// chroma subsampled by 2^shift), with no swscale and, for Y models, no RGB on the way:
// the model's luma comes from the Y plane (corrected where the video's matrix is not the
// model's) and the output chroma is the bicubic upscale of the source chroma planes.
// RGB models get R'G'B' built from the planes (chroma upsampled bilinearly) and give back
// planes (chroma averaged over each subsampled block, or a box of its width centred on a
// co-sited sample). Every resampling puts chroma where the frames' siting says it lies.
#pragma once
#include <cstdint>

#include "image_io.h"
#include "resize.h"
#include "view.h"

namespace fastsr {

// h x w samples of uint8 or uint16 (columns contiguous), rows `row` bytes apart.
struct Plane {
  char* data = nullptr;
  PixelType type = PixelType::U8;
  int h = 0, w = 0;
  int64_t row = 0;
};

struct YuvFrame {
  Plane y, cb, cr;
  int shift_h = 0, shift_w = 0;  // log2 of the chroma subsampling
  // Chroma siting along a subsampled axis: a sample lies on the first luma row / column
  // of its block (co-sited: MPEG-2 and H.264's default "left", "topleft") or at the
  // block's centre (JPEG, MPEG-1).
  bool cosited_h = false, cosited_w = false;
};

// Where chroma sample i of a subsampled axis lies from its block's centre, in luma samples.
inline float chroma_site(int shift, bool cosited) {
  return cosited ? -0.5f * float((1 << shift) - 1) : 0.f;
}

// How codes map to Y' in [0, 1] and Pb, Pr in [-1/2, 1/2] (value = code * scale + shift),
// and the video's matrix between R'G'B' and Y'PbPr.
struct YuvCoding {
  float luma_scale, luma_shift, chroma_scale, chroma_shift;
  float max_code;  // 2^bits - 1: full-range chroma at Pb = 1/2 rounds one above it
  float to_yuv[9], to_rgb[9];
};
// ITU-R BT.601/709/2020 quantisation: studio range Y 16..235 and C 16..240 at 8 bits,
// times 2^(bits - 8); full range 0..2^bits - 1 with chroma centred on 2^(bits - 1).
// kr, kb: the matrix's red and blue luma weights.
YuvCoding yuv_coding(int bits, bool full_range, double kr, double kb);

// Called inside an OpenMP parallel region. low: (1, src.cb.h, src.cb.w, 2) Pb/Pr.
// Y model: luma into `input` and the chroma into `low`, one pass.
void read_yuv_luma(const YuvFrame& src, const YuvCoding& coding, const YCbCr& ycc,
                   const View& input, const View& low);
// RGB model: read_yuv_chroma into up.x, then resize_width(up), then read_yuv_rgb.
void read_yuv_chroma(const YuvFrame& src, const YuvCoding& coding, const View& low);
void read_yuv_rgb(const YuvFrame& src, const YuvCoding& coding, const ResizeJob& up,
                  const View& input);
// Y model: `chroma` upscales the source chroma to dst's chroma grid (its width pass done).
void write_yuv_luma(const View& out, const ResizeJob& chroma, const YuvCoding& coding,
                    const YCbCr& ycc, const YuvFrame& dst);
void write_yuv_rgb(const View& out, const YuvCoding& coding, const YuvFrame& dst);

}  // namespace fastsr
