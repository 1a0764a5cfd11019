#include "image_io.h"

#include "isa_clones.h"
#include "scratch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

namespace fastsr {

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int shift = 0;
    while (!(mantissa & 0x400)) mantissa <<= 1, ++shift;
    bits = sign | (uint32_t(113 - shift) << 23) | ((mantissa & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as numpy's float16 cast; inputs are finite and in [0, 1].
uint16_t float_to_half(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t sign = (bits >> 16) & 0x8000;
  const int exponent = int((bits >> 23) & 0xff) - 127 + 15;
  uint32_t mantissa = bits & 0x7fffff;
  if (exponent <= 0) {  // subnormal half (or zero)
    if (exponent < -10) return uint16_t(sign);
    mantissa |= 0x800000;
    const int shift = 14 - exponent;
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1), midpoint = 1u << (shift - 1);
    if (rest > midpoint || (rest == midpoint && (half & 1))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = (uint32_t(exponent) << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // may carry into the exponent
  return uint16_t(sign | half);
}


template <class T>
struct Element {  // T stored in the caller's memory (possibly unaligned)
  static float load(const char* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return float(v);
  }
  static T convert(float v, float full) {  // v in [0, 1]
    if constexpr (std::is_integral_v<T>) {
      return T(round_to_int(v * full));
    } else {
      return T(v);
    }
  }
};

struct Half {
  uint16_t bits;
};
template <>
struct Element<Half> {
  static float load(const char* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return half_to_float(v);
  }
  static Half convert(float v, float) { return Half{float_to_half(v)}; }
};

// count = w * c values of one image row into `values`, times `scale`.
template <class T>
FASTSR_INLINE void load_row(const Image& src, const char* line, float scale, float* values) {
  if (src.pix == int64_t(sizeof(T)) * src.c && src.ch == int64_t(sizeof(T))) {
    const int64_t count = int64_t(src.w) * src.c;
    for (int64_t i = 0; i < count; ++i) values[i] = Element<T>::load(line + i * int64_t(sizeof(T))) * scale;
    return;
  }
  for (int x = 0; x < src.w; ++x)
    for (int k = 0; k < src.c; ++k)
      values[x * src.c + k] = Element<T>::load(line + x * src.pix + k * src.ch) * scale;
}

// w * c values in [0, 1] into one image row, converted to T.
template <class T>
FASTSR_INLINE void store_row(const Image& dst, const float* values, float full, char* line) {
  const int64_t count = int64_t(dst.w) * dst.c;
  if (dst.pix == int64_t(sizeof(T)) * dst.c && dst.ch == int64_t(sizeof(T))) {
    std::vector<float>& staged = row_scratch(1, size_t(count * int64_t(sizeof(T)) / 4 + 1));
    T* converted = reinterpret_cast<T*>(staged.data());
    for (int64_t i = 0; i < count; ++i) converted[i] = Element<T>::convert(values[i], full);
    std::memcpy(line, converted, size_t(count) * sizeof(T));
    return;
  }
  for (int x = 0; x < dst.w; ++x)
    for (int k = 0; k < dst.c; ++k) {
      const T v = Element<T>::convert(values[x * dst.c + k], full);
      std::memcpy(line + x * dst.pix + k * dst.ch, &v, sizeof(T));
    }
}

template <class T>
FASTSR_INLINE void read_rows(const Image& src, float scale, ColorModel model, const YCbCr& ycc,
               const View& input, const View* chroma) {
  const float* f = ycc.forward;
  const float grey_luma = f[0] + f[1] + f[2];
  const int64_t rows = int64_t(src.n) * src.h;
#pragma omp for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int b = int(r / src.h), y = int(r % src.h);
    float* px = row_scratch(0, size_t(src.w) * src.c).data();
    load_row<T>(src, src.data + b * src.img + y * src.row, scale, px);
    float* out = input.at(b, y, 0);
    const int64_t step = input.pix;
    if (model == ColorModel::Rgb && src.c == 3) {
      for (int x = 0; x < src.w; ++x)
        for (int k = 0; k < 3; ++k) out[x * step + k] = px[3 * x + k];
    } else if (model == ColorModel::Rgb) {
      for (int x = 0; x < src.w; ++x)
        for (int k = 0; k < 3; ++k) out[x * step + k] = px[x];
    } else if (src.c == 1) {
      for (int x = 0; x < src.w; ++x) out[x * step] = ycc.offset[0] + grey_luma * px[x];
    } else {
      float* cbcr = chroma->at(b, y, 0);
      for (int x = 0; x < src.w; ++x) {
        const float red = px[3 * x], green = px[3 * x + 1], blue = px[3 * x + 2];
        out[x * step] = ycc.offset[0] + f[0] * red + f[1] * green + f[2] * blue;
        cbcr[2 * x] = ycc.offset[1] + f[3] * red + f[4] * green + f[5] * blue;
        cbcr[2 * x + 1] = ycc.offset[2] + f[6] * red + f[7] * green + f[8] * blue;
      }
    }
  }
}

// Pixels of a chroma-merged output row handled at a time (write_merged_row).
constexpr int kMergeChunk = 128;

// w pixels of an output row of a Y model on a colour image (luma from the network, chroma
// from the bicubic upscale) back to RGB, into three planes of w values: dense loads and stores,
// the matrix in locals, restrict pointers, so the compiler vectorises it (interleaved
// RGB stores would not be).
FASTSR_INLINE void merge_chroma_row(const float* __restrict in, int64_t step,
                                    const float* __restrict cbcr, const YCbCr& ycc, int w,
                                    float* __restrict planes) {
  const float y0 = ycc.offset[0], cb0 = ycc.offset[1], cr0 = ycc.offset[2];
  const float* m = ycc.inverse;
  const float m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5];
  const float m6 = m[6], m7 = m[7], m8 = m[8];
  float* __restrict red = planes;
  float* __restrict green = planes + w;
  float* __restrict blue = planes + 2 * w;
  for (int x = 0; x < w; ++x) {
    const float luma = in[x * step] - y0;
    const float cb = unit(cbcr[2 * x]) - cb0, cr = unit(cbcr[2 * x + 1]) - cr0;
    red[x] = unit(m0 * luma + m1 * cb + m2 * cr);
    green[x] = unit(m3 * luma + m4 * cb + m5 * cr);
    blue[x] = unit(m6 * luma + m7 * cb + m8 * cr);
  }
}

// The network's luma is dense (step 1) unless a tile writes into a wider buffer: a
// constant step lets the compiler load it with vector loads instead of gathers.
FASTSR_INLINE void merge_chroma(const float* in, int64_t step, const float* cbcr,
                                const YCbCr& ycc, int w, float* planes) {
  if (step == 1)
    merge_chroma_row(in, 1, cbcr, ycc, w, planes);
  else
    merge_chroma_row(in, step, cbcr, ycc, w, planes);
}

template <class T>
FASTSR_INLINE void interleave3(const T* __restrict red, const T* __restrict green,
                               const T* __restrict blue, int w, T* __restrict packed) {
  // 64-bit indices: Python's -fwrapv makes int index arithmetic wrap, which keeps GCC
  // from vectorising the interleave.
  for (int64_t x = 0; x < w; ++x) {
    packed[3 * x] = red[x];
    packed[3 * x + 1] = green[x];
    packed[3 * x + 2] = blue[x];
  }
}

// Three planes of w values in [0, 1] into w RGB pixels of an image row, converted to T:
// each plane converted on its own, then interleaved, two loops the compiler vectorises
// (one loop doing both stays scalar).
template <class T>
FASTSR_INLINE void store_planar(const Image& dst, const float* planes, int w, float full,
                                char* line) {
  if (dst.pix == int64_t(sizeof(T)) * 3 && dst.ch == int64_t(sizeof(T))) {
    alignas(64) T converted[6 * kMergeChunk];
    for (int x = 0; x < 3 * w; ++x) converted[x] = Element<T>::convert(planes[x], full);
    // Bytes have no alignment to keep: interleave straight into the caller's row.
    T* packed = sizeof(T) == 1 ? reinterpret_cast<T*>(line) : converted + 3 * w;
    interleave3(converted, converted + w, converted + 2 * w, w, packed);
    if (sizeof(T) != 1) std::memcpy(line, packed, size_t(3 * w) * sizeof(T));
    return;
  }
  for (int x = 0; x < w; ++x)
    for (int k = 0; k < 3; ++k) {
      const T v = Element<T>::convert(planes[k * w + x], full);
      std::memcpy(line + x * dst.pix + k * dst.ch, &v, sizeof(T));
    }
}

// One output row of a Y model on a colour image, a chunk at a time through the bicubic
// upscale of its chroma (rows), the merge and the store, so each chunk's intermediates stay
// in L1 (a whole row's, about 60 KB at 2560 pixels, would not).
template <class T>
FASTSR_INLINE void write_merged_row(const float* in, int64_t step, WidthRing& chroma,
                                    int b, int oy, int left, const YCbCr& ycc, float full,
                                    const Image& dst, char* line) {
  alignas(64) float cbcr[2 * kMergeChunk];
  alignas(64) float planes[3 * kMergeChunk];
  for (int x0 = 0; x0 < dst.w; x0 += kMergeChunk) {
    const int w = std::min(kMergeChunk, dst.w - x0);
    blend_row(chroma, b, oy, cbcr, 2 * int64_t(left + x0), 2 * int64_t(w));
    merge_chroma(in + x0 * step, step, cbcr, ycc, w, planes);
    store_planar<T>(dst, planes, w, full, line + x0 * dst.pix);
  }
}

template <class T>
FASTSR_INLINE void write_rows(const FrameWrite& frame, WidthRing* ring, int64_t begin,
                              int64_t end) {
  const View& out = frame.out;
  const Image& dst = frame.dst;
  const YCbCr& ycc = frame.ycc;
  const ColorModel model = frame.model;
  const int top = frame.top, left = frame.left;
  const float full = float(frame.full);
  const float* inv = ycc.inverse;
  // A grey image through a Y model has flat chroma (Cb = Cr = offset): R = G = B up to
  // the rounding of the inverse matrix, whose luma column they average.
  const float grey_gain = (inv[0] + inv[3] + inv[6]) / 3.f;
  for (int64_t r = begin; r < end; ++r) {
    const int b = int(r / dst.h), y = int(r % dst.h);
    const float* in = out.at(b, top + y, left);
    const int64_t step = out.pix;
    float* values = row_scratch(0, size_t(dst.w) * dst.c).data();
    if (model == ColorModel::Rgb && dst.c == 3) {
      for (int x = 0; x < dst.w; ++x)
        for (int k = 0; k < 3; ++k) values[3 * x + k] = unit(in[x * step + k]);
    } else if (model == ColorModel::Rgb) {
      for (int x = 0; x < dst.w; ++x)
        values[x] = unit((in[x * step] + in[x * step + 1] + in[x * step + 2]) / 3.f);
    } else if (dst.c == 1) {
      for (int x = 0; x < dst.w; ++x) values[x] = unit(grey_gain * (in[x * step] - ycc.offset[0]));
    } else {
      write_merged_row<T>(in, step, *ring, b, top + y, left, ycc, full, dst,
                          dst.data + b * dst.img + y * dst.row);
      continue;
    }
    store_row<T>(dst, values, full, dst.data + b * dst.img + y * dst.row);
  }
}

}  // namespace

FASTSR_ISA_CLONES
void read_frame(const Image& src, double full, ColorModel model, const YCbCr& ycc,
                const View& input, const View* chroma) {
  const float scale = full > 0 ? float(1.0 / full) : 1.f;
  switch (src.type) {
    case PixelType::U8: read_rows<uint8_t>(src, scale, model, ycc, input, chroma); break;
    case PixelType::U16: read_rows<uint16_t>(src, scale, model, ycc, input, chroma); break;
    case PixelType::F16: read_rows<Half>(src, scale, model, ycc, input, chroma); break;
    case PixelType::F32: read_rows<float>(src, scale, model, ycc, input, chroma); break;
    case PixelType::F64: read_rows<double>(src, scale, model, ycc, input, chroma); break;
  }
}

FASTSR_ISA_CLONES
void write_frame_rows(const FrameWrite& frame, WidthRing* ring, int64_t begin, int64_t end) {
  switch (frame.dst.type) {
    case PixelType::U8: write_rows<uint8_t>(frame, ring, begin, end); break;
    case PixelType::U16: write_rows<uint16_t>(frame, ring, begin, end); break;
    case PixelType::F16: write_rows<Half>(frame, ring, begin, end); break;
    case PixelType::F32: write_rows<float>(frame, ring, begin, end); break;
    case PixelType::F64: write_rows<double>(frame, ring, begin, end); break;
  }
}

void write_frame(const FrameWrite& frame) {
  std::optional<WidthRing> ring;  // this thread's
  if (frame.chroma) ring.emplace(*frame.chroma);
  const int64_t rows = int64_t(frame.dst.n) * frame.dst.h;
#pragma omp for schedule(static)
  for (int64_t r = 0; r < rows; ++r) write_frame_rows(frame, ring ? &*ring : nullptr, r, r + 1);
}

}  // namespace fastsr
