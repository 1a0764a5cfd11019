// A compiled network: activation buffers allocated once, and a list of steps over views
// of them. run() executes every step inside one OpenMP parallel region (each step
// splits its own work and ends with the implicit barrier of its `omp for`).
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "aligned.h"
#include "conv2d.h"
#include "conv2d_bf16.h"
#include "conv2d_int8.h"
#include "image_io.h"
#include "pointwise.h"
#include "resize.h"
#include "view.h"
#include "winograd.h"
#include "winograd_int8.h"
#include "yuv_io.h"

namespace fastsr {

// Threads a Program made with threads=0 runs on (process-wide, like torch.set_num_threads).
int default_threads();
void set_default_threads(int threads);

struct BufferShape {
  int n, h, w, c, pad;
};

class Program {
 public:
  // threads 0: use default_threads() at each run.
  explicit Program(int threads);

  int threads() const { return threads_; }
  int add_buffer(const BufferShape& shape);
  int buffer_count() const { return int(buffers_.size()); }
  // Bytes of activation buffers (borders included) and step scratch the Program holds,
  // counting the chroma buffers a Y model's colour frames need, made on their first run.
  size_t bytes() const;
  View view(int buffer, int channel_offset, int channels) const;
  // Index of the buffer `v` lies in, or -1 when it is not one of this Program's views.
  int buffer_of(const View& v) const;
  void set_input(const View& v) { input_ = v; }
  void set_output(const View& v) { output_ = v; }
  const View& input() const { return input_; }
  const View& output() const { return output_; }

  void add_conv2d(const View& x, const View& out, const View* skip, ConvLayer layer);
  void add_winograd(const View& x, const View& out, const View* skip, WinogradLayer layer);
  void add_resize(const View& x, const View& out, ResizeMode mode, int factor);
  void add_add(const View& a, const View& b, const View& out);
  void add_mul(const View& a, const View& b, const View& out, const View* skip = nullptr);
  void add_affine(const View& x, std::vector<float> scale, std::vector<float> shift, const View& out);
  void add_activation(const View& x, PointwiseParams params, std::vector<float> slope, const View& out);
  void add_copy(const View& x, const View& out);
  void add_pixel_shuffle(const View& x, int r, const View& out, const View* skip = nullptr);
  void add_pixel_unshuffle(const View& x, int r, const View& out);
  void add_global_avg_pool(const View& x, const View& out);

  // Narrow tensors, numbered apart from the float buffers: uint8 for int8 layers, whose
  // border reads `fill` (the tensor's zero point), and bf16 for bf16 layers (border zero).
  // A view of a buffer of the other element type does not belong to the Program.
  int add_byte_buffer(const BufferShape& shape, uint8_t fill);
  int add_bf16_buffer(const BufferShape& shape);
  ByteView byte_view(int buffer, int channel_offset, int channels) const;
  Bf16View bf16_view(int buffer, int channel_offset, int channels) const;
  int byte_buffer_of(const ByteView& v) const;
  int bf16_buffer_of(const Bf16View& v) const;
  // out (fp32), out_q (u8) or both: a tensor needed both ways, written in one pass.
  void add_conv2d_int8(const ByteView& x, const View* out, const ByteView* out_q,
                       const View* skip, Int8ConvLayer layer);
  void add_winograd_int8(const ByteView& x, const View* out, const ByteView* out_q,
                         const View* skip, Int8WinogradLayer layer);
  void add_quantize(const View& x, float scale, int zero, const ByteView& out);
  void add_dequantize(const ByteView& x, float scale, int zero, const View& out);
  // out (fp32), out_bf16 or both, as add_conv2d_int8.
  void add_conv2d_bf16(const Bf16View& x, const View* out, const Bf16View* out_bf16,
                       const View* skip, Bf16ConvLayer layer);
  // By the bf16 kernels of active_bf16_isa() (std::invalid_argument where that is None).
  void add_to_bf16(const View& x, const Bf16View& out);
  void add_from_bf16(const Bf16View& x, const View& out);

  // input/output: the Program's input and output views laid over caller memory.
  void run(const View& input, const View& output) const;
  // How run_image turns pixels into the model's input channels and back (set once).
  void set_color(ColorModel model, const YCbCr& ycc) { color_ = model, ycc_ = ycc; }
  ColorModel color() const { return color_; }
  // One frame from the caller's pixels to the caller's pixels: src has the input's size;
  // dst receives the output from row `top`, column `left` on. `full` as in read_frame.
  // Only src's first `valid_h` rows and `valid_w` columns are the frame's own, the rest
  // padding (fastsr.padding): a Y model's chroma is upscaled from those alone.
  void run_image(const Image& src, const Image& dst, double full, int top, int left,
                 int valid_h, int valid_w);
  // One video frame from planes to planes (input batch 1; see yuv_io.h). A Y model's
  // chroma goes from src's chroma grid to dst's by one integer factor per axis.
  void run_yuv(const YuvFrame& src, const YuvFrame& dst, const YuvCoding& coding);
  // The steps alone, on whatever the buffers hold: times a kernel without the frame copies.
  void run_steps() const;

 private:
  int threads_;
  std::vector<BufferShape> shapes_;
  std::vector<AlignedFloats> buffers_;
  struct NarrowBuffer {
    BufferShape shape;
    size_t element_bytes;
    AlignedArray<uint8_t> bytes;  // aligned: AMX tile rows are whole cache lines
  };
  std::vector<NarrowBuffer> narrow_;
  int add_narrow_buffer(const BufferShape& shape, size_t element_bytes, size_t slack, uint8_t fill);
  template <class T>
  NhwcView<T> narrow_view(int buffer, int channel_offset, int channels) const;
  template <class T>
  int narrow_buffer_of(const NhwcView<T>& v) const;
  size_t scratch_floats_ = 0;
  // One per thread, shared by the int8 Winograd steps (they run one after another), each
  // in huge pages (AlignedArray): per step, 4 KB pages made one process in seven run
  // quality_x2 int8 1.45x slower (docs/BENCHMARKS.md).
  std::shared_ptr<std::vector<AlignedFloats>> int8_winograd_scratch_ =
      std::make_shared<std::vector<AlignedFloats>>();
  std::vector<std::function<void()>> steps_;
  View input_, output_;
  ColorModel color_ = ColorModel::Rgb;
  YCbCr ycc_{};
  // Cb/Cr of a colour frame for a Y model, at input and output size (made on first use).
  // run_yuv's: a Y model's source chroma and its width pass, or an RGB model's chroma on
  // its way up to the luma grid (remade when the frame's geometry changes).
  struct Chroma;
  std::shared_ptr<Chroma> chroma_, yuv_chroma_;
  Chroma& chroma();
  static std::shared_ptr<Chroma> make_chroma(int n, int h, int w, int factor_h, int factor_w,
                                             ResizeMode mode, float offset_h = 0.f,
                                             float offset_w = 0.f);
  Chroma& yuv_chroma(const YuvFrame& src, const YuvFrame& dst);
  // The last direct conv added, and its rows on the calling thread alone: when it is the
  // last step and writes the output, run_image writes the frame behind it band by band,
  // each band read while it is still in cache.
  struct ConvRows {
    size_t step;
    std::function<void(int64_t, int64_t)> run;
    View out;
    int shuffle;
    int64_t count;  // n x oh conv output rows
  };
  std::optional<ConvRows> last_conv_;
  const ConvRows* conv_before_write() const;
  void write_behind_conv(const ConvRows& conv, const FrameWrite& frame) const;
};

}  // namespace fastsr
