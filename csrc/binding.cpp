// Python face of the C++ backend. Every array and view is checked here, at the boundary,
// and bad input raises TypeError/ValueError; the kernels behind it trust their callers.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "binding_bf16.h"
#include "binding_checks.h"
#include "binding_int8.h"
#include "binding_yuv.h"
#include "conv_config.h"
#include "conv_op.h"
#include "fma_peak.h"
#include "program.h"
#include "simd.h"
#include "vocabulary.h"

namespace py = pybind11;
using fastsr::Program;
using fastsr::View;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// A float32 array of `ndim` dimensions (any strides), or TypeError/ValueError.
py::array checked_array(py::handle obj, const std::string& what, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(what + " must be a numpy array, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()))
    throw py::type_error(what + " must be float32, got " + std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw py::value_error(what + " must have " + std::to_string(ndim) + " dimensions, got " +
                          shape_of(a));
  return a;
}

// A C-contiguous float32 copy-or-view of a parameter array.
FloatArray param(py::handle obj, const std::string& what, int ndim) {
  return FloatArray::ensure(checked_array(obj, what, ndim));
}

std::vector<float> per_channel(py::handle obj, const std::string& what, int channels) {
  FloatArray a = param(obj, what, 1);
  if (a.shape(0) != channels && a.shape(0) != 1)
    throw py::value_error(what + " must have 1 or " + std::to_string(channels) +
                          " entries, got " + std::to_string(a.shape(0)));
  std::vector<float> v(static_cast<size_t>(channels));
  for (int c = 0; c < channels; ++c) v[size_t(c)] = a.data()[a.shape(0) == 1 ? 0 : c];
  return v;
}

// An NHWC view over a numpy array's memory: any outer strides, channel stride 1.
View view_of_array(const py::array& a, const std::string& what) {
  for (int d = 0; d < 4; ++d)
    if (a.strides(d) % py::ssize_t(sizeof(float)))
      throw py::value_error(what + ": strides must be multiples of 4 bytes");
  if (a.shape(3) > 1 && a.strides(3) != py::ssize_t(sizeof(float)))
    throw py::value_error(what + ": the channel (last) axis must be contiguous (stride 4 bytes), got " +
                          std::to_string(a.strides(3)));
  if (reinterpret_cast<uintptr_t>(a.data()) % alignof(float))
    throw py::value_error(what + ": data is not aligned to 4 bytes");
  View v;
  v.data = static_cast<float*>(const_cast<void*>(a.data()));
  v.n = int(a.shape(0)), v.h = int(a.shape(1)), v.w = int(a.shape(2)), v.c = int(a.shape(3));
  v.img = a.strides(0) / 4, v.row = a.strides(1) / 4, v.pix = a.strides(2) / 4;
  return v;
}

std::string geometry(const View& v) {
  return "(" + std::to_string(v.n) + ", " + std::to_string(v.h) + ", " + std::to_string(v.w) +
         ", " + std::to_string(v.c) + ")";
}

void expect_same(const View& a, const View& b, const std::string& what) {
  if (a.n != b.n || a.h != b.h || a.w != b.w || a.c != b.c)
    throw py::value_error(what + ": shapes differ, " + geometry(a) + " vs " + geometry(b));
}

void expect_owned(const Program& p, std::initializer_list<const View*> views) {
  for (const View* v : views)
    if (v && p.buffer_of(*v) < 0) throw py::value_error("view does not belong to this Program");
}

// For ops that read neighbours of the pixel they write: out must not overlap x.
void expect_disjoint(const Program& p, const View& x, const View& out, const std::string& op) {
  if (p.buffer_of(x) != p.buffer_of(out)) return;
  // Views of one buffer start at the same pixel, so they differ by their channel offsets.
  const int64_t shift = x.data - out.data;
  if (shift + x.c <= 0 || shift >= out.c) return;
  throw py::value_error(op + ": output overlaps its input");
}

void add_conv2d(Program& p, const View& x, const View& out, py::handle weight_obj,
                py::handle bias_obj, int stride, int pad_top, int pad_left, int dilation,
                const std::string& activation, py::handle slope_obj, float alpha, int shuffle,
                std::optional<View> skip, const std::string& algorithm, const std::string& gate,
                float gate_scale, float gate_shift) {
  expect_owned(p, {&x, &out, skip ? &*skip : nullptr});
  expect_disjoint(p, x, out, "conv2d");
  FloatArray weight = param(weight_obj, "conv2d weight", 4);
  const int cout = int(weight.shape(0)), cin = int(weight.shape(1));
  const int kh = int(weight.shape(2)), kw = int(weight.shape(3));
  if (stride < 1 || dilation < 1 || shuffle < 1 || kh < 1 || kw < 1)
    throw py::value_error("conv2d: stride, dilation, pixel shuffle and kernel size must be >= 1");
  if (cin != x.c)
    throw py::value_error("conv2d: weight " + shape_of(weight) + " expects " + std::to_string(cin) +
                          " input channels, the input view has " + std::to_string(x.c));
  if (cout % (shuffle * shuffle) || out.c * shuffle * shuffle != cout || out.h % shuffle ||
      out.w % shuffle || out.n != x.n)
    throw py::value_error("conv2d: output view " + geometry(out) + " does not fit " +
                          std::to_string(cout) + " channels shuffled by " + std::to_string(shuffle));
  const int oh = out.h / shuffle, ow = out.w / shuffle;
  const int64_t bottom = int64_t(oh - 1) * stride - pad_top + int64_t(dilation) * (kh - 1);
  const int64_t right = int64_t(ow - 1) * stride - pad_left + int64_t(dilation) * (kw - 1);
  if (pad_top > x.pad || pad_left > x.pad || bottom > x.h - 1 + x.pad || right > x.w - 1 + x.pad ||
      pad_top < 0 || pad_left < 0)
    throw py::value_error("conv2d: the input view's zero border (" + std::to_string(x.pad) +
                          " px) is too small for this kernel, padding and output size");
  if (skip) expect_same(*skip, out, "conv2d skip");
  std::vector<float> bias(size_t(cout), 0.f);
  if (!bias_obj.is_none()) bias = per_channel(bias_obj, "conv2d bias", cout);
  const fastsr::Act act = fastsr::parse_act(activation);
  std::vector<float> slope;
  if (act == fastsr::Act::Prelu) {
    if (slope_obj.is_none()) throw py::value_error("conv2d: prelu needs a slope array");
    slope = per_channel(slope_obj, "conv2d prelu slope", cout);
  }
  const fastsr::Act gate_act = fastsr::parse_act(gate);
  if (gate_act == fastsr::Act::Prelu || gate_act == fastsr::Act::LeakyRelu)
    throw py::value_error("conv2d: the gate must be a parameterless activation, got '" + gate + "'");
  if (gate_act != fastsr::Act::None && (!skip || shuffle != 1))
    throw py::value_error("conv2d: a gated skip needs a skip and no pixel shuffle");
  fastsr::ConvSpec spec{weight.data(), bias.data(), cout, cin, kh, kw};
  spec.gate = gate_act, spec.gate_scale = gate_scale, spec.gate_shift = gate_shift;
  spec.stride = stride, spec.dilation = dilation, spec.pad_top = pad_top, spec.pad_left = pad_left;
  spec.act = act, spec.alpha = alpha, spec.shuffle = shuffle;
  spec.slope = slope.empty() ? nullptr : slope.data();
  if (algorithm == "auto") spec.algorithm = fastsr::ConvAlgorithm::Auto;
  else if (algorithm == "direct") spec.algorithm = fastsr::ConvAlgorithm::Direct;
  else if (algorithm == "winograd") spec.algorithm = fastsr::ConvAlgorithm::Winograd;
  else
    throw py::value_error("conv2d: algorithm must be auto, direct or winograd, got '" + algorithm + "'");
  fastsr::add_conv(p, x, out, skip ? &*skip : nullptr, spec);
}

py::array run(const Program& p, py::handle x_obj, py::handle out_obj) {
  py::array x = checked_array(x_obj, "input", 4);
  const View& in = p.input();
  if (in.data == nullptr || p.output().data == nullptr)
    throw py::value_error("the Program has no input or output view set");
  if (x.shape(0) != in.n || x.shape(1) != in.h || x.shape(2) != in.w || x.shape(3) != in.c)
    throw py::value_error("input must have shape " + geometry(in) + ", got " + shape_of(x));
  View xv = view_of_array(x, "input");
  const View& o = p.output();
  py::array result;
  if (out_obj.is_none()) {
    result = py::array_t<float>({o.n, o.h, o.w, o.c});
  } else {
    result = checked_array(out_obj, "out", 4);
    if (!result.writeable()) throw py::value_error("out is read-only");
    if (result.shape(0) != o.n || result.shape(1) != o.h || result.shape(2) != o.w ||
        result.shape(3) != o.c)
      throw py::value_error("out must have shape " + geometry(o) + ", got " + shape_of(result));
  }
  View ov = view_of_array(result, "out");
  {
    py::gil_scoped_release release;
    p.run(xv, ov);
  }
  return result;
}

// A caller's image as an N x H x W x C window: uint8, uint16, float16/32/64, any strides.
fastsr::Image image_of_array(const py::array& a, const std::string& what) {
  using fastsr::PixelType;
  const char kind = a.dtype().kind();
  const py::ssize_t size = a.itemsize();
  PixelType type;
  if (kind == 'u' && size == 1) type = PixelType::U8;
  else if (kind == 'u' && size == 2) type = PixelType::U16;
  else if (kind == 'f' && size == 2) type = PixelType::F16;
  else if (kind == 'f' && size == 4) type = PixelType::F32;
  else if (kind == 'f' && size == 8) type = PixelType::F64;
  else
    throw py::type_error(what + " must be uint8, uint16, float16, float32 or float64, got " +
                         std::string(py::str(a.dtype())));
  if (size > 1 && a.dtype().byteorder() == '>')
    throw py::type_error(what + " must be in native byte order");
  if (a.ndim() != 4 || (a.shape(3) != 1 && a.shape(3) != 3))
    throw py::value_error(what + " must be N x H x W x C with C = 1 or 3, got " + shape_of(a));
  fastsr::Image image;
  image.data = static_cast<char*>(const_cast<void*>(a.data()));
  image.type = type;
  image.n = int(a.shape(0)), image.h = int(a.shape(1)), image.w = int(a.shape(2));
  image.c = int(a.shape(3));
  image.img = a.strides(0), image.row = a.strides(1), image.pix = a.strides(2);
  image.ch = a.strides(3);
  return image;
}

// Full intensity of an image's integer dtype; 0 for floats (already in [0, 1]).
double full_intensity(fastsr::PixelType type) {
  return type == fastsr::PixelType::U8 ? 255.0 : type == fastsr::PixelType::U16 ? 65535.0 : 0.0;
}

void set_color(Program& p, const std::string& model, py::handle forward_obj,
               py::handle offset_obj) {
  if (p.input().data == nullptr) throw py::value_error("set_color: set the input view first");
  fastsr::ColorModel color;
  if (model == "rgb") color = fastsr::ColorModel::Rgb;
  else if (model == "y") color = fastsr::ColorModel::Y;
  else throw py::value_error("color must be 'rgb' or 'y', got '" + model + "'");
  const int wanted = color == fastsr::ColorModel::Rgb ? 3 : 1;
  if (p.input().c != wanted || p.output().c != wanted)
    throw py::value_error("a '" + model + "' model takes and gives " + std::to_string(wanted) +
                          " channels; this Program has " + std::to_string(p.input().c) +
                          " in and " + std::to_string(p.output().c) + " out");
  FloatArray forward = param(forward_obj, "forward matrix", 2);
  FloatArray offset = param(offset_obj, "offset", 1);
  if (forward.shape(0) != 3 || forward.shape(1) != 3 || offset.shape(0) != 3)
    throw py::value_error("the YCbCr transform is a 3 x 3 matrix and 3 offsets");
  fastsr::YCbCr ycc;
  std::copy(forward.data(), forward.data() + 9, ycc.forward);
  std::copy(offset.data(), offset.data() + 3, ycc.offset);
  const float* m = ycc.forward;
  const double det = double(m[0]) * (double(m[4]) * m[8] - double(m[5]) * m[7]) -
                     double(m[1]) * (double(m[3]) * m[8] - double(m[5]) * m[6]) +
                     double(m[2]) * (double(m[3]) * m[7] - double(m[4]) * m[6]);
  if (std::abs(det) < 1e-12) throw py::value_error("the YCbCr matrix is singular");
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {  // inverse = adjugate / det (cofactor of the transpose)
      const int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
      ycc.inverse[3 * r + c] =
          float((double(m[3 * r1 + c1]) * m[3 * r2 + c2] - double(m[3 * r1 + c2]) * m[3 * r2 + c1]) / det);
    }
  p.set_color(color, ycc);
}

void run_image(Program& p, py::handle src_obj, py::handle dst_obj, int top, int left,
               std::optional<int> valid_h, std::optional<int> valid_w) {
  if (p.input().data == nullptr || p.output().data == nullptr)
    throw py::value_error("the Program has no input or output view set");
  if (!py::isinstance<py::array>(src_obj) || !py::isinstance<py::array>(dst_obj))
    throw py::type_error("src and dst must be numpy arrays");
  py::array src_array = py::reinterpret_borrow<py::array>(src_obj);
  py::array dst_array = py::reinterpret_borrow<py::array>(dst_obj);
  const fastsr::Image src = image_of_array(src_array, "src");
  const fastsr::Image dst = image_of_array(dst_array, "dst");
  if (!dst_array.writeable()) throw py::value_error("dst is read-only");
  if (src.type != dst.type) throw py::type_error("src and dst must have the same dtype");
  const View &in = p.input(), &out = p.output();
  if (src.n != in.n || src.h != in.h || src.w != in.w)
    throw py::value_error("src must be " + std::to_string(in.n) + " x " + std::to_string(in.h) +
                          " x " + std::to_string(in.w) + " x C, got " + shape_of(src_array));
  if (dst.c != src.c || dst.n != out.n || top < 0 || left < 0 || top + dst.h > out.h ||
      left + dst.w > out.w)
    throw py::value_error("dst " + shape_of(dst_array) + " does not fit the output " +
                          geometry(out) + " from row " + std::to_string(top) + ", column " +
                          std::to_string(left) + " with src's " + std::to_string(src.c) +
                          " channels");
  const int model_channels = p.color() == fastsr::ColorModel::Rgb ? 3 : 1;
  if (in.c != model_channels || out.c != model_channels)
    throw py::value_error("run_image: the Program's colour model does not match its " +
                          std::to_string(in.c) + " input channels; call set_color first");
  const int rows = valid_h.value_or(src.h), cols = valid_w.value_or(src.w);
  if (rows < 1 || rows > src.h || cols < 1 || cols > src.w)
    throw py::value_error("valid_h and valid_w must be within src's " + std::to_string(src.h) +
                          " x " + std::to_string(src.w) + ", got " + std::to_string(rows) +
                          " x " + std::to_string(cols));
  py::gil_scoped_release release;
  p.run_image(src, dst, full_intensity(src.type), top, left, rows, cols);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastsr C++ CPU backend";
  m.def("simd_level", [] { return fastsr::simd_name(fastsr::active_simd()); },
        "SIMD level the kernels use now.");
  m.def("detected_simd_level", [] { return fastsr::simd_name(fastsr::detected_simd()); },
        "Best SIMD level this CPU supports.");
  m.def("supported_simd_levels",
        [] {
          std::vector<std::string> names;
          for (fastsr::Simd level : fastsr::supported_simd()) names.push_back(fastsr::simd_name(level));
          return names;
        },
        "SIMD levels this build runs on this CPU, best first.");
  m.def("set_simd_level", [](const std::string& name) { fastsr::set_simd(fastsr::parse_simd(name)); },
        py::arg("level"),
        "Force a SIMD level (portable, avx2, avx512, neon) among supported_simd_levels(). Applies to "
        "convolutions added to a Program afterwards.");
  m.def("conv_packing_level",
        [](int cout) {
          if (cout < 1) throw py::value_error("cout must be >= 1, got " + std::to_string(cout));
          return fastsr::simd_name(fastsr::packing_simd(fastsr::active_simd(), cout));
        },
        py::arg("cout"),
        "The SIMD level a direct conv of `cout` output channels is packed for at the active one.");
  m.def("winograd_scratch_floats", &fastsr::winograd_scratch_floats, py::arg("cin"),
        py::arg("cout"), "Floats of per-thread scratch a Winograd conv step allocates.");
  m.def("winograd_fits",
        [](int cin, int cout, int kh, int kw, int stride, int dilation, int pad_top, int pad_left) {
          return fastsr::winograd_fits(cin, cout, kh, kw, stride, dilation, pad_top, pad_left,
                                       fastsr::active_simd());
        },
        "Whether conv2d(algorithm='auto') runs this layer as Winograd at the active SIMD level.");
  m.def("vocabulary",
        [] {
          auto names = [](const auto& table) {
            std::vector<std::string> out;
            for (const auto& entry : table) out.push_back(entry.first);
            return out;
          };
          py::dict d;
          d["conv_activations"] = names(fastsr::conv_activations());
          d["pointwise"] = names(fastsr::pointwise_kinds());
          d["resize_modes"] = names(fastsr::resize_modes());
          d["cubic_a"] = fastsr::kCubicA;
          return d;
        },
        "The op names this build parses, for the test that they are fastsr.graph.ir's.");
  m.def("max_threads", &fastsr::default_threads,
        "Threads a Program made with threads=0 uses (set_max_threads, else OpenMP's default).");
  m.def("set_max_threads",
        [](int threads) {
          if (threads < 1) throw py::value_error("threads must be >= 1, got " + std::to_string(threads));
          fastsr::set_default_threads(threads);
        },
        py::arg("threads"));
  m.def("fma_peak_gflops",
        [](int threads, double seconds) {
          if (threads < 1) throw py::value_error("threads must be >= 1");
          py::gil_scoped_release release;
          return fastsr::fma_peak_gflops(threads, seconds);
        },
        py::arg("threads"), py::arg("seconds") = 0.3,
        "FMA throughput of the active SIMD level on `threads` threads, GFLOP/s.");

  py::class_<View>(m, "View", "A channel window onto one of a Program's NHWC buffers.")
      .def_readonly("n", &View::n)
      .def_readonly("h", &View::h)
      .def_readonly("w", &View::w)
      .def_readonly("c", &View::c)
      .def_readonly("pad", &View::pad)
      .def("__repr__", [](const View& v) { return "View" + geometry(v) + " pad=" + std::to_string(v.pad); });

  py::class_<Program> program(m, "Program",
                              "Buffers allocated once and a list of steps; run() releases the GIL.");
  program
      .def(py::init([](int threads) {
             if (threads < 0) throw py::value_error("threads must be >= 0 (0: the default)");
             return Program(threads);
           }),
           py::arg("threads") = 0)
      .def_property_readonly("threads", &Program::threads)
      .def_property_readonly("bytes", &Program::bytes,
                             "Bytes of buffers and scratch the Program holds or will make.")
      .def("add_buffer",
           [](Program& p, int n, int h, int w, int c, int pad) {
             if (n < 1 || h < 1 || w < 1 || c < 1 || pad < 0)
               throw py::value_error("buffer sizes must be positive and pad >= 0");
             return p.add_buffer({n, h, w, c, pad});
           },
           py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("pad") = 0)
      .def("view",
           [](const Program& p, int buffer, int offset, int channels) {
             if (buffer < 0 || buffer >= p.buffer_count())
               throw py::value_error("no buffer " + std::to_string(buffer));
             View whole = p.view(buffer, 0, 1);
             if (offset < 0 || channels < 1 || offset + channels > int(whole.pix))
               throw py::value_error("channels [" + std::to_string(offset) + ", " +
                                     std::to_string(offset + channels) + ") exceed the buffer's " +
                                     std::to_string(whole.pix));
             return p.view(buffer, offset, channels);
           },
           py::arg("buffer"), py::arg("offset") = 0, py::arg("channels"))
      .def("set_input", [](Program& p, const View& v) { expect_owned(p, {&v}); p.set_input(v); })
      .def("set_output", [](Program& p, const View& v) { expect_owned(p, {&v}); p.set_output(v); })
      .def("conv2d", &add_conv2d, py::arg("x"), py::arg("out"), py::arg("weight"),
           py::arg("bias") = py::none(), py::arg("stride") = 1, py::arg("pad_top") = 0,
           py::arg("pad_left") = 0, py::arg("dilation") = 1, py::arg("activation") = "none",
           py::arg("slope") = py::none(), py::arg("alpha") = 0.f, py::arg("shuffle") = 1,
           py::arg("skip") = py::none(), py::arg("algorithm") = "auto", py::arg("gate") = "none",
           py::arg("gate_scale") = 1.f, py::arg("gate_shift") = 0.f,
           "Add a convolution step. algorithm: auto (Winograd F(4x4,3x3) where it fits, else "
           "direct), direct, or winograd. gate: out = (y + skip) * (gate_scale * gate(y) + "
           "gate_shift) instead of y + skip.")
      .def("resize",
           [](Program& p, const View& x, const View& out, const std::string& mode, int factor) {
             expect_owned(p, {&x, &out});
             expect_disjoint(p, x, out, "resize");
             if (factor < 1 || out.h != x.h * factor || out.w != x.w * factor || out.c != x.c ||
                 out.n != x.n)
               throw py::value_error("resize: output " + geometry(out) + " is not input " +
                                     geometry(x) + " scaled by " + std::to_string(factor));
             p.add_resize(x, out, fastsr::parse_resize_mode(mode), factor);
           },
           py::arg("x"), py::arg("out"), py::arg("mode"), py::arg("factor"))
      .def("add",
           [](Program& p, const View& a, const View& b, const View& out) {
             expect_owned(p, {&a, &b, &out});
             expect_same(a, b, "add"), expect_same(a, out, "add");
             p.add_add(a, b, out);
           })
      .def("mul",
           [](Program& p, const View& a, const View& b, const View& out,
              std::optional<View> skip) {
             expect_owned(p, {&a, &b, &out, skip ? &*skip : nullptr});
             expect_same(a, out, "mul");
             const bool global = b.h == 1 && b.w == 1 && b.n == a.n && (b.c == a.c || b.c == 1);
             if (!global) expect_same(a, b, "mul");
             if (skip) expect_same(a, *skip, "mul skip");
             p.add_mul(a, b, out, skip ? &*skip : nullptr);
           },
           py::arg("a"), py::arg("b"), py::arg("out"), py::arg("skip") = py::none(),
           "out = a * b (b: a's shape, or 1x1 with a's or 1 channel), plus skip if given.")
      .def("affine",
           [](Program& p, const View& x, py::handle scale, py::handle shift, const View& out) {
             expect_owned(p, {&x, &out});
             expect_same(x, out, "affine");
             p.add_affine(x, per_channel(scale, "affine scale", x.c),
                          per_channel(shift, "affine shift", x.c), out);
           })
      .def("activation",
           [](Program& p, const View& x, const View& out, const std::string& kind,
              py::handle slope, float alpha, float lo, float hi) {
             expect_owned(p, {&x, &out});
             expect_same(x, out, kind);
             fastsr::PointwiseParams params;
             params.kind = fastsr::parse_pointwise(kind);
             params.alpha = alpha, params.lo = lo, params.hi = hi;
             std::vector<float> slopes;
             if (params.kind == fastsr::Pointwise::Prelu) {
               if (slope.is_none()) throw py::value_error("prelu needs a slope array");
               slopes = per_channel(slope, "prelu slope", x.c);
             }
             p.add_activation(x, params, std::move(slopes), out);
           },
           py::arg("x"), py::arg("out"), py::arg("kind"), py::arg("slope") = py::none(),
           py::arg("alpha") = 0.f, py::arg("lo") = 0.f, py::arg("hi") = 0.f)
      .def("copy",
           [](Program& p, const View& x, const View& out) {
             expect_owned(p, {&x, &out});
             expect_same(x, out, "copy");
             p.add_copy(x, out);
           })
      .def("pixel_shuffle",
           [](Program& p, const View& x, int r, const View& out) {
             expect_owned(p, {&x, &out});
             expect_disjoint(p, x, out, "pixel_shuffle");
             if (r < 1 || out.c * r * r != x.c || out.h != x.h * r || out.w != x.w * r || out.n != x.n)
               throw py::value_error("pixel_shuffle: output " + geometry(out) + " does not match input " +
                                     geometry(x) + " with factor " + std::to_string(r));
             p.add_pixel_shuffle(x, r, out);
           })
      .def("pixel_unshuffle",
           [](Program& p, const View& x, int r, const View& out) {
             expect_owned(p, {&x, &out});
             expect_disjoint(p, x, out, "pixel_unshuffle");
             if (r < 1 || x.c * r * r != out.c || x.h != out.h * r || x.w != out.w * r || out.n != x.n)
               throw py::value_error("pixel_unshuffle: output " + geometry(out) + " does not match input " +
                                     geometry(x) + " with factor " + std::to_string(r));
             p.add_pixel_unshuffle(x, r, out);
           })
      .def("global_avg_pool",
           [](Program& p, const View& x, const View& out) {
             expect_owned(p, {&x, &out});
             expect_disjoint(p, x, out, "global_avg_pool");
             if (out.h != 1 || out.w != 1 || out.c != x.c || out.n != x.n)
               throw py::value_error("global_avg_pool: output must be (n, 1, 1, c), got " + geometry(out));
             p.add_global_avg_pool(x, out);
           })
      .def("run_steps",
           [](const Program& p) {
             py::gil_scoped_release release;
             p.run_steps();
           },
           "Run the steps on the buffers as they are, without copying a frame in or out "
           "(for timing kernels).")
      .def("set_color", &set_color, py::arg("model"), py::arg("forward"), py::arg("offset"),
           "How run_image feeds pixels to the model: 'rgb', or 'y' (luma by the RGB -> YCbCr "
           "transform forward * rgb + offset, chroma upscaled by bicubic).")
      .def("run_image", &run_image, py::arg("src"), py::arg("dst"), py::arg("top") = 0,
           py::arg("left") = 0, py::arg("valid_h") = py::none(), py::arg("valid_w") = py::none(),
           "Upscale the pixels of src (N x H x W x C, C = 1 or 3, uint8/uint16/float16/32/64, "
           "any strides) into dst (same dtype), which takes the output from (top, left) on: "
           "converted, clamped to [0, 1] and rounded. Rows and columns of src from valid_h and "
           "valid_w on are padding: a Y model's chroma comes from the others. The GIL is "
           "released.")
      .def("run", &run, py::arg("x"), py::arg("out") = py::none(),
           "Run on a float32 N x H x W x C array (channel axis contiguous). Returns a new array, "
           "or writes into `out` (same rules, any outer strides) and returns it.");
  bind_int8(m, program);
  bind_bf16(m, program);
  bind_yuv(program);

  m.def("global_avg_pool",
        [](py::handle x_obj) {
          py::array x = checked_array(x_obj, "x", 4);
          const int n = int(x.shape(0)), h = int(x.shape(1)), w = int(x.shape(2)), c = int(x.shape(3));
          if (n < 1 || h < 1 || w < 1 || c < 1) throw py::value_error("x must not be empty");
          Program p(0);
          View in = p.view(p.add_buffer({n, h, w, c, 0}), 0, c);
          View out = p.view(p.add_buffer({n, 1, 1, c, 0}), 0, c);
          p.set_input(in), p.set_output(out);
          p.add_global_avg_pool(in, out);
          return run(p, x, py::none());
        },
        py::arg("x"), "Mean over H and W of a float32 N x H x W x C array, as N x 1 x 1 x C.");
}
