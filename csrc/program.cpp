#include "program.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "conv_config.h"
#include "rearrange.h"

namespace fastsr {

namespace {
std::atomic<int> g_default_threads{0};
}

int default_threads() {
  const int n = g_default_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

void set_default_threads(int threads) { g_default_threads.store(threads); }

Program::Program(int threads) : threads_(threads > 0 ? threads : 0) {}

int Program::add_buffer(const BufferShape& s) {
  const int64_t hp = s.h + 2 * s.pad, wp = s.w + 2 * s.pad;
  shapes_.push_back(s);
  buffers_.emplace_back(size_t(s.n * hp * wp * s.c));
  return int(buffers_.size()) - 1;
}

struct Program::Chroma {
  AlignedFloats low, rows;
  ResizeTaps along_w, along_h;
  ResizeJob job;
  ResizeMode mode;
  int h, w, factor_h, factor_w;
  float offset_h, offset_w;
};

size_t Program::bytes() const {
  size_t floats = scratch_floats_;
  for (const auto& b : buffers_) floats += b.size();
  if (color_ == ColorModel::Y)  // Program::chroma(): the low-resolution Cb/Cr
    floats += size_t(input_.n) * 2 * size_t(input_.h) * input_.w;
  if (yuv_chroma_)  // run_yuv's, sized by the frames it has taken
    floats += yuv_chroma_->low.size() + yuv_chroma_->rows.size();
  size_t bytes = floats * sizeof(float);
  for (const auto& b : narrow_) bytes += b.bytes.size();
  return bytes;
}

namespace {

// `channels` channels from `channel_offset` on of a bordered NHWC buffer starting at `base`
// (float, uint8 or bf16 elements: the same geometry).
template <class ViewT, class T>
ViewT bordered_view(const BufferShape& s, T* base, int channel_offset, int channels) {
  ViewT v;
  v.n = s.n, v.h = s.h, v.w = s.w, v.c = channels, v.pad = s.pad;
  v.pix = s.c;
  v.row = int64_t(s.w + 2 * s.pad) * s.c;
  v.img = int64_t(s.h + 2 * s.pad) * v.row;
  v.data = base + s.pad * v.row + s.pad * v.pix + channel_offset;
  return v;
}

// What a conv step keeps alive for its job: its skip operand and the channel offsets of
// its (possibly pixel-shuffled) output and skip; oh x ow is the output before the shuffle.
struct ConvTarget {
  View skip;
  std::vector<int64_t> out_offsets, skip_offsets;
  std::vector<int64_t> narrow_offsets;  // a narrow conv's u8 or bf16 output's
  int oh = 0, ow = 0;

  template <class T>
  ConvTarget(const NhwcView<T>& out, const View* skip_in, int cout, int r)
      : out_offsets(shuffle_offsets(out, cout, r)), oh(out.h / r), ow(out.w / r) {
    if (skip_in) skip = *skip_in, skip_offsets = shuffle_offsets(*skip_in, cout, r);
  }
  const View* skip_view() const { return skip_offsets.empty() ? nullptr : &skip; }
  const int64_t* skip_offsets_data() const {
    return skip_offsets.empty() ? nullptr : skip_offsets.data();
  }
};

// A narrow conv's: its fp32 output, its narrow one (u8 or bf16), or both.
template <class T>
ConvTarget narrow_target(const View* out, const NhwcView<T>* narrow, const View* skip, int cout,
                         int r) {
  ConvTarget at = out ? ConvTarget(*out, skip, cout, r) : ConvTarget(*narrow, skip, cout, r);
  if (narrow) at.narrow_offsets = shuffle_offsets(*narrow, cout, r);
  return at;
}

}  // namespace

View Program::view(int buffer, int channel_offset, int channels) const {
  // Buffers are never reallocated, so this pointer outlives the view.
  float* base = const_cast<float*>(buffers_.at(size_t(buffer)).data());
  return bordered_view<View>(shapes_.at(size_t(buffer)), base, channel_offset, channels);
}

int Program::buffer_of(const View& v) const {
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const float* begin = buffers_[b].data();
    if (v.data >= begin && v.data < begin + buffers_[b].size()) return int(b);
  }
  return -1;
}

void Program::add_conv2d(const View& x, const View& out, const View* skip, ConvLayer layer) {
  struct State {
    ConvLayer layer;
    ConvTarget at;
    ConvJob job;
  };
  const int r = layer.shuffle, cout = layer.cout;
  auto s = std::make_shared<State>(State{std::move(layer), ConvTarget(out, skip, cout, r), {}});
  s->job = ConvJob{&s->layer, x, out, s->at.skip_view(), s->at.out_offsets.data(),
                   s->at.skip_offsets_data(), r == 1, s->at.oh, s->at.ow};
  steps_.push_back([s] { conv2d(s->job); });
  last_conv_ = ConvRows{steps_.size() - 1,
                        [s](int64_t begin, int64_t end) { conv2d_rows(s->job, begin, end); },
                        out, r, int64_t(x.n) * s->at.oh};
}

void Program::add_winograd(const View& x, const View& out, const View* skip,
                           WinogradLayer layer) {
  struct State {
    WinogradLayer layer;
    View skip;
    std::vector<AlignedFloats> scratch;
    WinogradJob job;
  };
  auto s = std::make_shared<State>();
  s->layer = std::move(layer);
  if (skip) s->skip = *skip;
  const int threads = threads_ > 0 ? threads_ : default_threads();
  for (int t = 0; t < threads; ++t) s->scratch.emplace_back(winograd_scratch_floats(x.c, out.c));
  scratch_floats_ += size_t(threads) * winograd_scratch_floats(x.c, out.c);
  s->job = WinogradJob{&s->layer, x, out, skip ? &s->skip : nullptr, &s->scratch};
  steps_.push_back([s] { winograd(s->job); });
}

void Program::add_resize(const View& x, const View& out, ResizeMode mode, int factor) {
  struct State {
    AlignedFloats scratch;
    ResizeTaps along_w, along_h;
    ResizeJob job;
  };
  auto s = std::make_shared<State>();
  s->scratch = AlignedFloats(size_t(x.n) * x.h * out.w * x.c);
  scratch_floats_ += s->scratch.size();
  s->along_w = make_taps(mode, x.w, factor);
  s->along_h = make_taps(mode, x.h, factor);
  View scratch{s->scratch.data(), x.n, x.h, out.w, x.c, x.c, int64_t(out.w) * x.c,
               int64_t(x.h) * out.w * x.c, 0};
  s->job = ResizeJob{x, out, scratch, &s->along_w, &s->along_h};
  steps_.push_back([s] { resize(s->job); });
}

void Program::add_add(const View& a, const View& b, const View& out) {
  steps_.push_back([a, b, out] { add(a, b, out); });
}

void Program::add_mul(const View& a, const View& b, const View& out, const View* skip) {
  if (skip == nullptr) {
    steps_.push_back([a, b, out] { mul(a, b, out); });
    return;
  }
  steps_.push_back([a, b, out, s = *skip] { mul(a, b, out, &s); });
}

void Program::add_affine(const View& x, std::vector<float> scale, std::vector<float> shift,
                         const View& out) {
  steps_.push_back([x, scale = std::move(scale), shift = std::move(shift), out] {
    affine(x, scale.data(), shift.data(), out);
  });
}

void Program::add_activation(const View& x, PointwiseParams params, std::vector<float> slope,
                             const View& out) {
  auto owned = std::make_shared<std::vector<float>>(std::move(slope));
  params.slope = owned->data();
  steps_.push_back([x, params, owned, out] { activation(x, params, out); });
}

void Program::add_copy(const View& x, const View& out) {
  steps_.push_back([x, out] { copy(x, out); });
}

void Program::add_pixel_shuffle(const View& x, int r, const View& out, const View* skip) {
  if (skip == nullptr) {
    steps_.push_back([x, r, out] { pixel_shuffle(x, r, out); });
    return;
  }
  steps_.push_back([x, r, out, s = *skip] { pixel_shuffle(x, r, out, &s); });
}

void Program::add_pixel_unshuffle(const View& x, int r, const View& out) {
  steps_.push_back([x, r, out] { pixel_unshuffle(x, r, out); });
}

void Program::add_global_avg_pool(const View& x, const View& out) {
  auto partial = std::make_shared<std::vector<double>>();
  steps_.push_back([x, out, partial] { global_avg_pool(x, out, *partial); });
}

int Program::add_narrow_buffer(const BufferShape& s, size_t element_bytes, size_t slack,
                               uint8_t fill) {
  const int64_t hp = s.h + 2 * s.pad, wp = s.w + 2 * s.pad;
  AlignedArray<uint8_t> bytes(size_t(s.n * hp * wp * s.c) * element_bytes + slack);
  std::memset(bytes.data(), fill, bytes.size());
  narrow_.push_back({s, element_bytes, std::move(bytes)});
  return int(narrow_.size()) - 1;
}

// The int8 dot products read channels 4 at a time: a slack of a vector past the last pixel.
// The bf16 kernel reads no channel past a view's last (an odd channel is read alone).
constexpr size_t kByteSlack = 64;

int Program::add_byte_buffer(const BufferShape& s, uint8_t fill) {
  return add_narrow_buffer(s, 1, kByteSlack, fill);
}

int Program::add_bf16_buffer(const BufferShape& s) { return add_narrow_buffer(s, 2, 0, 0); }

template <class T>
NhwcView<T> Program::narrow_view(int buffer, int channel_offset, int channels) const {
  const NarrowBuffer& b = narrow_.at(size_t(buffer));
  if (b.element_bytes != sizeof(T)) throw std::out_of_range("a narrow buffer of another type");
  T* base = reinterpret_cast<T*>(const_cast<uint8_t*>(b.bytes.data()));
  return bordered_view<NhwcView<T>>(b.shape, base, channel_offset, channels);
}

template <class T>
int Program::narrow_buffer_of(const NhwcView<T>& v) const {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(v.data);
  for (size_t i = 0; i < narrow_.size(); ++i) {
    const NarrowBuffer& b = narrow_[i];
    const size_t slack = b.element_bytes == 1 ? kByteSlack : 0;
    if (b.element_bytes == sizeof(T) && p >= b.bytes.data() &&
        p < b.bytes.data() + b.bytes.size() - slack)
      return int(i);
  }
  return -1;
}

ByteView Program::byte_view(int buffer, int channel_offset, int channels) const {
  return narrow_view<uint8_t>(buffer, channel_offset, channels);
}

Bf16View Program::bf16_view(int buffer, int channel_offset, int channels) const {
  return narrow_view<uint16_t>(buffer, channel_offset, channels);
}

int Program::byte_buffer_of(const ByteView& v) const { return narrow_buffer_of(v); }

int Program::bf16_buffer_of(const Bf16View& v) const { return narrow_buffer_of(v); }

void Program::add_conv2d_int8(const ByteView& x, const View* out, const ByteView* out_q,
                              const View* skip, Int8ConvLayer layer) {
  struct State {
    Int8ConvLayer layer;
    ConvTarget at;
    Int8ConvJob job;
  };
  const int r = layer.shuffle, cout = layer.cout;
  auto s = std::make_shared<State>(
      State{std::move(layer), narrow_target(out, out_q, skip, cout, r), {}});
  s->job = Int8ConvJob{&s->layer, x, out ? *out : View{}, out_q ? *out_q : ByteView{},
                       s->at.skip_view(), s->at.out_offsets.data(),
                       s->at.narrow_offsets.data(), s->at.skip_offsets_data(),
                       r == 1, s->at.oh, s->at.ow};
  steps_.push_back([s] { conv2d_int8(s->job); });
}

void Program::add_winograd_int8(const ByteView& x, const View* out, const ByteView* out_q,
                                const View* skip, Int8WinogradLayer layer) {
  struct State {
    Int8WinogradLayer layer;
    View skip;
    std::shared_ptr<std::vector<AlignedFloats>> scratch;
    Int8WinogradJob job;
  };
  auto s = std::make_shared<State>();
  s->layer = std::move(layer);
  if (skip) s->skip = *skip;
  const int threads = threads_ > 0 ? threads_ : default_threads();
  const size_t floats = winograd_int8_scratch_floats(x.c, s->layer.cout);
  s->scratch = int8_winograd_scratch_;
  std::vector<AlignedFloats>& scratch = *s->scratch;
  if (scratch.empty() || scratch[0].size() < floats) {
    for (const AlignedFloats& held : scratch) scratch_floats_ -= held.bytes() / sizeof(float);
    scratch.clear();
    for (int t = 0; t < threads; ++t) {
      scratch.emplace_back(floats, true);
      scratch_floats_ += scratch.back().bytes() / sizeof(float);
    }
  }
  s->job = Int8WinogradJob{&s->layer, x, out ? *out : View{}, out_q ? *out_q : ByteView{},
                           skip ? &s->skip : nullptr, s->scratch.get()};
  steps_.push_back([s] { winograd_int8(s->job); });
}

void Program::add_quantize(const View& x, float scale, int zero, const ByteView& out) {
  const QuantizeJob job{x, out, 1.f / scale, float(zero)};
  const Int8Isa isa = active_int8_isa();
  steps_.push_back([job, isa] { quantize_u8(job, isa); });
}

void Program::add_dequantize(const ByteView& x, float scale, int zero, const View& out) {
  steps_.push_back([x, scale, zero, out] { dequantize_u8(x, scale, zero, out); });
}

void Program::add_conv2d_bf16(const Bf16View& x, const View* out, const Bf16View* out_bf16,
                              const View* skip, Bf16ConvLayer layer) {
  struct State {
    Bf16ConvLayer layer;
    ConvTarget at;
    Bf16ConvJob job;
  };
  const int r = layer.conv.shuffle, cout = layer.conv.cout;
  auto s = std::make_shared<State>(
      State{std::move(layer), narrow_target(out, out_bf16, skip, cout, r), {}});
  const ConvJob epilogue{&s->layer.conv, View{}, out ? *out : View{}, s->at.skip_view(),
                         s->at.out_offsets.data(), s->at.skip_offsets_data(), r == 1,
                         s->at.oh, s->at.ow};
  s->job = Bf16ConvJob{&s->layer, x, epilogue, out_bf16 ? *out_bf16 : Bf16View{},
                       s->at.narrow_offsets.data()};
  steps_.push_back([s] { conv2d_bf16(s->job); });
}

void Program::add_to_bf16(const View& x, const Bf16View& out) {
  const Bf16Kernels* k = &bf16_kernels(active_bf16_isa());
  steps_.push_back([k, x, out] { k->to_bf16(x, out); });
}

void Program::add_from_bf16(const Bf16View& x, const View& out) {
  const Bf16Kernels* k = &bf16_kernels(active_bf16_isa());
  steps_.push_back([k, x, out] { k->from_bf16(x, out); });
}

void Program::run_steps() const {
#pragma omp parallel num_threads(threads_ > 0 ? threads_ : default_threads())
  for (const auto& step : steps_) step();
}

static View dense_view(AlignedFloats& storage, int n, int h, int w, int c) {
  return View{storage.data(), n, h, w, c, c, int64_t(w) * c, int64_t(h) * w * c, 0};
}

// Cb/Cr of n images of h x w and the taps of their upscale by (factor_h, factor_w). The
// width-pass image (job.scratch) has its shape but no rows: run_image blends through a
// WidthRing; run_yuv allocates them.
std::shared_ptr<Program::Chroma> Program::make_chroma(int n, int h, int w, int factor_h,
                                                     int factor_w, ResizeMode mode,
                                                     float offset_h, float offset_w) {
  auto s = std::make_shared<Chroma>();
  s->mode = mode, s->h = h, s->w = w, s->factor_h = factor_h, s->factor_w = factor_w;
  s->offset_h = offset_h, s->offset_w = offset_w;
  s->low = AlignedFloats(size_t(n) * h * w * 2);
  s->along_w = make_taps(mode, w, factor_w, offset_w);
  s->along_h = make_taps(mode, h, factor_h, offset_h);
  s->job = ResizeJob{dense_view(s->low, n, h, w, 2), View{},
                     dense_view(s->rows, n, h, w * factor_w, 2), &s->along_w, &s->along_h};
  return s;
}

Program::Chroma& Program::chroma() {
  if (!chroma_) {
    const int factor = output_.h / input_.h;
    chroma_ = make_chroma(input_.n, input_.h, input_.w, factor, factor, ResizeMode::Bicubic);
  }
  return *chroma_;
}

// Padding rows and columns of the low-resolution chroma repeat the frame's last ones. The
// bicubic clamps at the edge, so it then gives the unpadded frame's chroma. Rows past the
// edge read only columns below valid_w of the edge row, which no thread writes.
static void replicate_chroma_edge(const View& cbcr, int valid_h, int valid_w) {
  const int64_t rows = int64_t(cbcr.n) * cbcr.h;
#pragma omp for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int b = int(r / cbcr.h), y = int(r % cbcr.h);
    float* row = cbcr.at(b, y, 0);
    const float* edge_row = cbcr.at(b, std::min(y, valid_h - 1), 0);
    if (y >= valid_h)
      for (int64_t i = 0; i < int64_t(valid_w) * cbcr.pix; ++i) row[i] = edge_row[i];
    const float* edge = edge_row + int64_t(valid_w - 1) * cbcr.pix;
    for (int x = valid_w; x < cbcr.w; ++x)
      for (int k = 0; k < cbcr.c; ++k) row[x * cbcr.pix + k] = edge[k];
  }
}

// The source coordinate offset, in source chroma samples, that puts each resampled chroma
// sample where its siting says it lies. scale: luma output per input sample; dst_shift 0
// and scale 1 for the source's own luma grid.
static float chroma_offset(int src_shift, bool src_cosited,
                           int dst_shift, bool dst_cosited, int scale) {
  return (chroma_site(dst_shift, dst_cosited) / float(scale) -
          chroma_site(src_shift, src_cosited)) / float(1 << src_shift);
}

Program::Chroma& Program::yuv_chroma(const YuvFrame& src, const YuvFrame& dst) {
  // Y: source chroma -> dst's chroma grid; RGB: source chroma -> the source's luma grid.
  const bool y = color_ == ColorModel::Y;
  const int scale = output_.h / input_.h;
  const int factor_h = y ? (scale << src.shift_h) >> dst.shift_h : 1 << src.shift_h;
  const int factor_w = y ? (scale << src.shift_w) >> dst.shift_w : 1 << src.shift_w;
  const float offset_h = y ? chroma_offset(src.shift_h, src.cosited_h, dst.shift_h,
                                           dst.cosited_h, scale)
                           : chroma_offset(src.shift_h, src.cosited_h, 0, false, 1);
  const float offset_w = y ? chroma_offset(src.shift_w, src.cosited_w, dst.shift_w,
                                           dst.cosited_w, scale)
                           : chroma_offset(src.shift_w, src.cosited_w, 0, false, 1);
  const ResizeMode mode = y ? ResizeMode::Bicubic : ResizeMode::Bilinear;
  Chroma* c = yuv_chroma_.get();
  if (!c || c->mode != mode || c->h != src.cb.h || c->w != src.cb.w ||
      c->factor_h != factor_h || c->factor_w != factor_w || c->offset_h != offset_h ||
      c->offset_w != offset_w) {
    yuv_chroma_ = make_chroma(1, src.cb.h, src.cb.w, factor_h, factor_w, mode, offset_h, offset_w);
    Chroma& made = *yuv_chroma_;
    made.rows = AlignedFloats(size_t(src.cb.h) * src.cb.w * factor_w * 2);
    made.job.scratch = dense_view(made.rows, 1, src.cb.h, src.cb.w * factor_w, 2);
  }
  return *yuv_chroma_;
}

void Program::run_yuv(const YuvFrame& src, const YuvFrame& dst, const YuvCoding& coding) {
  Chroma& chroma = yuv_chroma(src, dst);
  const ResizeJob& job = chroma.job;
#pragma omp parallel num_threads(threads_ > 0 ? threads_ : default_threads())
  {
    if (color_ == ColorModel::Y) {
      read_yuv_luma(src, coding, ycc_, input_, job.x);
    } else {
      read_yuv_chroma(src, coding, job.x);
      resize_width(job);
      read_yuv_rgb(src, coding, job, input_);
    }
    for (const auto& step : steps_) step();
    if (color_ == ColorModel::Y) {
      resize_width(job);
      write_yuv_luma(output_, job, coding, ycc_, dst);
    } else {
      write_yuv_rgb(output_, coding, dst);
    }
  }
}

static bool same_view(const View& a, const View& b) {
  return a.data == b.data && a.n == b.n && a.h == b.h && a.w == b.w && a.c == b.c &&
         a.pix == b.pix && a.row == b.row && a.img == b.img;
}

const Program::ConvRows* Program::conv_before_write() const {
  const bool last = last_conv_ && last_conv_->step + 1 == steps_.size() &&
                    same_view(last_conv_->out, output_);
  return last ? &*last_conv_ : nullptr;
}

// Each thread runs its static share of the conv's rows (as `omp for` would) a band at a
// time, and writes the frame rows of each band straight after: about 256 KB of output
// floats, which the write then reads from L2 rather than memory.
void Program::write_behind_conv(const ConvRows& conv, const FrameWrite& frame) const {
  const int64_t threads = omp_get_num_threads(), share = (conv.count + threads - 1) / threads;
  const int64_t begin = std::min(conv.count, omp_get_thread_num() * share);
  const int64_t end = std::min(conv.count, begin + share);
  const int64_t row_bytes = int64_t(conv.shuffle) * conv.out.w * conv.out.c * 4;
  const int64_t band = std::max<int64_t>(1, (int64_t(256) << 10) / row_bytes);
  const int oh = conv.out.h / conv.shuffle;
  std::optional<WidthRing> ring;  // this thread's
  if (frame.chroma) ring.emplace(*frame.chroma);
  for (int64_t first = begin; first < end; first += band) {
    const int64_t last = std::min(end, first + band);
    conv.run(first, last);
    for (int64_t row = first; row < last; ++row) {  // its output rows, less the window's top
      const int64_t image = row / oh, y = row % oh;
      const int64_t top = std::max<int64_t>(0, y * conv.shuffle - frame.top);
      const int64_t bottom = std::min<int64_t>(frame.dst.h, (y + 1) * conv.shuffle - frame.top);
      if (top < bottom)
        write_frame_rows(frame, ring ? &*ring : nullptr, image * frame.dst.h + top,
                         image * frame.dst.h + bottom);
    }
  }
}

void Program::run_image(const Image& src, const Image& dst, double full, int top, int left,
                        int valid_h, int valid_w) {
  Chroma* chroma = color_ == ColorModel::Y && src.c == 3 ? &this->chroma() : nullptr;
  const bool padded = valid_h < src.h || valid_w < src.w;
  const FrameWrite frame{output_, top, left, chroma ? &chroma->job : nullptr, color_, ycc_,
                         full, dst};
  const ConvRows* tail = conv_before_write();
  const size_t before = steps_.size() - (tail ? 1 : 0);
#pragma omp parallel num_threads(threads_ > 0 ? threads_ : default_threads())
  {
    read_frame(src, full, color_, ycc_, input_, chroma ? &chroma->job.x : nullptr);
    if (chroma && padded) replicate_chroma_edge(chroma->job.x, valid_h, valid_w);
    for (size_t i = 0; i < before; ++i) steps_[i]();
    if (tail)
      write_behind_conv(*tail, frame);
    else
      write_frame(frame);
  }
}

void Program::run(const View& input, const View& output) const {
#pragma omp parallel num_threads(threads_ > 0 ? threads_ : default_threads())
  {
    copy(input, input_);
    for (const auto& step : steps_) step();
    copy(output_, output);
  }
}

}  // namespace fastsr
