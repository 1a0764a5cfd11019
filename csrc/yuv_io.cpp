#include "yuv_io.h"

#include <algorithm>
#include <cmath>

#include "isa_clones.h"
#include "scratch.h"

namespace fastsr {

YuvCoding yuv_coding(int bits, bool full_range, double kr, double kb) {
  YuvCoding c{};
  const double depth = double(1 << (bits - 8)), max = double((1 << bits) - 1);
  c.max_code = float(max);
  if (full_range) {
    c.luma_scale = float(1 / max), c.luma_shift = 0.f;
    c.chroma_scale = float(1 / max), c.chroma_shift = float(-double(1 << (bits - 1)) / max);
  } else {
    c.luma_scale = float(1 / (219 * depth)), c.luma_shift = float(-16 / 219.0);
    c.chroma_scale = float(1 / (224 * depth)), c.chroma_shift = float(-128 / 224.0);
  }
  // Y' = kr R + kg G + kb B, Pb = (B - Y') / (2 (1 - kb)), Pr = (R - Y') / (2 (1 - kr)).
  const double kg = 1 - kr - kb, cb = 2 * (1 - kb), cr = 2 * (1 - kr);
  const double to_yuv[9] = {kr,       kg,       kb,       -kr / cb, -kg / cb,
                            (1 - kb) / cb, (1 - kr) / cr, -kg / cr, -kb / cr};
  const double to_rgb[9] = {1, 0, cr, 1, -kb * cb / kg, -kr * cr / kg, 1, cb, 0};
  for (int i = 0; i < 9; ++i) c.to_yuv[i] = float(to_yuv[i]), c.to_rgb[i] = float(to_rgb[i]);
  return c;
}

namespace {

// The model's luma in terms of the video's Y'PbPr: offset + gain Y' + cb Pb + cr Pr. The
// chroma terms vanish (up to rounding) when the video's matrix is the model's (BT.601).
struct LumaMap {
  float offset, gain, cb, cr;
  bool corrected;
};

LumaMap luma_map(const YCbCr& ycc, const YuvCoding& c) {
  float g[3];
  for (int j = 0; j < 3; ++j)
    g[j] = ycc.forward[0] * c.to_rgb[j] + ycc.forward[1] * c.to_rgb[3 + j] +
           ycc.forward[2] * c.to_rgb[6 + j];
  const bool corrected = std::abs(g[1]) > 1e-5f || std::abs(g[2]) > 1e-5f;
  return {ycc.offset[0], g[0], corrected ? g[1] : 0.f, corrected ? g[2] : 0.f, corrected};
}

FASTSR_INLINE float chroma_unit(float v) { return std::min(std::max(v, -0.5f), 0.5f); }

template <class T>
FASTSR_INLINE const T* row_in(const Plane& p, int y) {
  return reinterpret_cast<const T*>(p.data + y * p.row);
}
template <class T>
FASTSR_INLINE T* row_out(const Plane& p, int y) {
  return reinterpret_cast<T*>(p.data + y * p.row);
}

// A clamped value back to its code: round((value - shift) / scale), at most max_code.
template <class T>
FASTSR_INLINE T code_of(float value, float inverse_scale, float code_offset, float max_code) {
  return T(std::min(round_even(value * inverse_scale + code_offset), max_code));
}

// Pb, Pr of chroma row `cy`, interleaved and clamped.
template <class T>
FASTSR_INLINE void load_chroma_row(const YuvFrame& f, const YuvCoding& c, int cy,
                                   float* __restrict cbcr) {
  const T* __restrict cb = row_in<T>(f.cb, cy);
  const T* __restrict cr = row_in<T>(f.cr, cy);
  const float s = c.chroma_scale, o = c.chroma_shift;
  for (int64_t x = 0; x < f.cb.w; ++x) {
    cbcr[2 * x] = chroma_unit(float(cb[x]) * s + o);
    cbcr[2 * x + 1] = chroma_unit(float(cr[x]) * s + o);
  }
}

template <class T>
FASTSR_INLINE void store_chroma_row(const float* __restrict cbcr, const YuvCoding& c, int cy,
                                    const YuvFrame& f) {
  T* __restrict cb = row_out<T>(f.cb, cy);
  T* __restrict cr = row_out<T>(f.cr, cy);
  const float inverse = 1.f / c.chroma_scale, offset = -c.chroma_shift / c.chroma_scale;
  const float top = c.max_code;
  for (int64_t x = 0; x < f.cb.w; ++x) {
    cb[x] = code_of<T>(chroma_unit(cbcr[2 * x]), inverse, offset, top);
    cr[x] = code_of<T>(chroma_unit(cbcr[2 * x + 1]), inverse, offset, top);
  }
}

// A constant step (1: the dense luma of a one-channel buffer) lets the compiler use vector
// loads and stores instead of gathers and scatters.
template <class T>
FASTSR_INLINE void luma_in_row(const T* __restrict codes, int w, const YuvCoding& c,
                               const LumaMap& m, int64_t step, float* __restrict out) {
  const float s = c.luma_scale, o = c.luma_shift, offset = m.offset, gain = m.gain;
  for (int64_t x = 0; x < w; ++x) out[x * step] = offset + gain * unit(float(codes[x]) * s + o);
}

template <class T>
FASTSR_INLINE void luma_out_row(const float* __restrict in, int64_t step, int w,
                                const YuvCoding& c, const LumaMap& m, T* __restrict codes) {
  const float inverse = 1.f / c.luma_scale, offset = -c.luma_shift / c.luma_scale;
  const float base = m.offset, inverse_gain = 1.f / m.gain, top = c.max_code;
  for (int64_t x = 0; x < w; ++x)
    codes[x] = code_of<T>(unit((in[x * step] - base) * inverse_gain), inverse, offset, top);
}

template <class T>
FASTSR_INLINE void read_luma_rows(const YuvFrame& src, const YuvCoding& c, const YCbCr& ycc,
                                  const View& input, const View& low) {
  const LumaMap m = luma_map(ycc, c);
  const int sw = src.shift_w;
#pragma omp for schedule(static)
  for (int cy = 0; cy < src.cb.h; ++cy) {
    float* cbcr = low.at(0, cy, 0);
    load_chroma_row<T>(src, c, cy, cbcr);
    const int end = std::min(src.y.h, (cy + 1) << src.shift_h);
    for (int y = cy << src.shift_h; y < end; ++y) {
      float* out = input.at(0, y, 0);
      const int64_t step = input.pix;
      if (step == 1)
        luma_in_row<T>(row_in<T>(src.y, y), src.y.w, c, m, 1, out);
      else
        luma_in_row<T>(row_in<T>(src.y, y), src.y.w, c, m, step, out);
      if (!m.corrected) continue;
      for (int x = 0; x < src.y.w; ++x)
        out[x * step] += m.cb * cbcr[2 * (x >> sw)] + m.cr * cbcr[2 * (x >> sw) + 1];
    }
  }
}

template <class T>
FASTSR_INLINE void read_chroma_rows(const YuvFrame& src, const YuvCoding& c, const View& low) {
#pragma omp for schedule(static)
  for (int cy = 0; cy < src.cb.h; ++cy) load_chroma_row<T>(src, c, cy, low.at(0, cy, 0));
}

template <class T>
FASTSR_INLINE void read_rgb_rows(const YuvFrame& src, const YuvCoding& c, const ResizeJob& up,
                                 const View& input) {
  const float* m = c.to_rgb;
  const float s = c.luma_scale, o = c.luma_shift;
#pragma omp for schedule(static)
  for (int y = 0; y < src.y.h; ++y) {
    float* cbcr = row_scratch(1, size_t(up.scratch.w) * 2).data();
    blend_row(up, 0, y, cbcr);
    const T* codes = row_in<T>(src.y, y);
    float* out = input.at(0, y, 0);
    const int64_t step = input.pix;
    for (int x = 0; x < src.y.w; ++x) {
      const float luma = unit(float(codes[x]) * s + o), pb = cbcr[2 * x], pr = cbcr[2 * x + 1];
      for (int k = 0; k < 3; ++k)
        out[x * step + k] = unit(m[3 * k] * luma + m[3 * k + 1] * pb + m[3 * k + 2] * pr);
    }
  }
}

template <class T>
FASTSR_INLINE void write_luma_rows(const View& out, const ResizeJob& chroma, const YuvCoding& c,
                                   const YCbCr& ycc, const YuvFrame& dst) {
  const LumaMap m = luma_map(ycc, c);
  const int sw = dst.shift_w;
#pragma omp for schedule(static)
  for (int cy = 0; cy < dst.cb.h; ++cy) {
    float* cbcr = row_scratch(1, size_t(chroma.scratch.w) * 2).data();
    blend_row(chroma, 0, cy, cbcr);
    store_chroma_row<T>(cbcr, c, cy, dst);
    const int end = std::min(dst.y.h, (cy + 1) << dst.shift_h);
    for (int y = cy << dst.shift_h; y < end; ++y) {
      const float* in = out.at(0, y, 0);
      int64_t step = out.pix;
      if (m.corrected) {  // the luma minus its chroma terms, on a dense row
        float* luma = row_scratch(0, size_t(dst.y.w)).data();
        for (int x = 0; x < dst.y.w; ++x) {
          const float pb = chroma_unit(cbcr[2 * (x >> sw)]), pr = chroma_unit(cbcr[2 * (x >> sw) + 1]);
          luma[x] = in[x * step] - m.cb * pb - m.cr * pr;
        }
        in = luma, step = 1;
      }
      if (step == 1)
        luma_out_row<T>(in, 1, dst.y.w, c, m, row_out<T>(dst.y, y));
      else
        luma_out_row<T>(in, step, dst.y.w, c, m, row_out<T>(dst.y, y));
    }
  }
}

// The luma samples (index, weight) that make chroma sample i of an axis subsampled by
// 2^shift: its block's, or for co-sited chroma a box as wide centred on the block's first
// sample (half weights at its two ends). Indices clamp at the edges.
template <class Tap>
FASTSR_INLINE void block_taps(int i, int shift, bool cosited, int size, Tap&& tap) {
  const int s = 1 << shift, first = i << shift;
  if (!cosited || shift == 0) {
    const int end = std::min(size, first + s);  // blocks at the right and bottom may be cut
    for (int j = first; j < end; ++j) tap(j, 1.f / float(end - first));
    return;
  }
  for (int k = -s / 2; k <= s / 2; ++k)
    tap(std::min(std::max(first + k, 0), size - 1), (std::abs(k) == s / 2 ? 0.5f : 1.f) / float(s));
}

// Y' to the Y plane per pixel; Pb, Pr filtered down to the chroma grid (block_taps).
template <class T>
FASTSR_INLINE void write_rgb_rows(const View& out, const YuvCoding& c, const YuvFrame& dst) {
  const float* m = c.to_yuv;
  const float inverse = 1.f / c.luma_scale, offset = -c.luma_shift / c.luma_scale;
  const int w = dst.y.w;
  const int64_t step = out.pix;
#pragma omp for schedule(static)
  for (int cy = 0; cy < dst.cb.h; ++cy) {
    const int end = std::min(dst.y.h, (cy + 1) << dst.shift_h);
    for (int y = cy << dst.shift_h; y < end; ++y) {
      const float* in = out.at(0, y, 0);
      T* codes = row_out<T>(dst.y, y);
      for (int x = 0; x < w; ++x) {
        const float r = unit(in[x * step]), g = unit(in[x * step + 1]), b = unit(in[x * step + 2]);
        codes[x] = code_of<T>(unit(m[0] * r + m[1] * g + m[2] * b), inverse, offset, c.max_code);
      }
    }
    float* rows = row_scratch(0, size_t(w) * 2).data();  // Pb, Pr filtered down the rows
    std::fill(rows, rows + 2 * w, 0.f);
    block_taps(cy, dst.shift_h, dst.cosited_h, dst.y.h, [&](int y, float weight) {
      const float* in = out.at(0, y, 0);
      for (int x = 0; x < w; ++x) {
        const float r = unit(in[x * step]), g = unit(in[x * step + 1]), b = unit(in[x * step + 2]);
        rows[2 * x] += weight * (m[3] * r + m[4] * g + m[5] * b);
        rows[2 * x + 1] += weight * (m[6] * r + m[7] * g + m[8] * b);
      }
    });
    float* sums = row_scratch(1, size_t(dst.cb.w) * 2).data();
    for (int x = 0; x < dst.cb.w; ++x) {
      float pb = 0.f, pr = 0.f;
      block_taps(x, dst.shift_w, dst.cosited_w, w, [&](int j, float weight) {
        pb += weight * rows[2 * j], pr += weight * rows[2 * j + 1];
      });
      sums[2 * x] = pb, sums[2 * x + 1] = pr;
    }
    store_chroma_row<T>(sums, c, cy, dst);
  }
}

}  // namespace

FASTSR_ISA_CLONES
void read_yuv_luma(const YuvFrame& src, const YuvCoding& coding, const YCbCr& ycc,
                   const View& input, const View& low) {
  if (src.y.type == PixelType::U8)
    read_luma_rows<uint8_t>(src, coding, ycc, input, low);
  else
    read_luma_rows<uint16_t>(src, coding, ycc, input, low);
}

FASTSR_ISA_CLONES
void read_yuv_chroma(const YuvFrame& src, const YuvCoding& coding, const View& low) {
  if (src.y.type == PixelType::U8)
    read_chroma_rows<uint8_t>(src, coding, low);
  else
    read_chroma_rows<uint16_t>(src, coding, low);
}

FASTSR_ISA_CLONES
void read_yuv_rgb(const YuvFrame& src, const YuvCoding& coding, const ResizeJob& up,
                  const View& input) {
  if (src.y.type == PixelType::U8)
    read_rgb_rows<uint8_t>(src, coding, up, input);
  else
    read_rgb_rows<uint16_t>(src, coding, up, input);
}

FASTSR_ISA_CLONES
void write_yuv_luma(const View& out, const ResizeJob& chroma, const YuvCoding& coding,
                    const YCbCr& ycc, const YuvFrame& dst) {
  if (dst.y.type == PixelType::U8)
    write_luma_rows<uint8_t>(out, chroma, coding, ycc, dst);
  else
    write_luma_rows<uint16_t>(out, chroma, coding, ycc, dst);
}

FASTSR_ISA_CLONES
void write_yuv_rgb(const View& out, const YuvCoding& coding, const YuvFrame& dst) {
  if (dst.y.type == PixelType::U8)
    write_rgb_rows<uint8_t>(out, coding, dst);
  else
    write_rgb_rows<uint16_t>(out, coding, dst);
}

}  // namespace fastsr
