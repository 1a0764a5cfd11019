#include "binding_int8.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "binding_checks.h"
#include "winograd_int8.h"

namespace py = pybind11;
using fastsr::ByteView;
using fastsr::Program;
using fastsr::View;

namespace {

using fastsr::binding::Array;
using fastsr::binding::channels;
using fastsr::binding::check_conv_window;
using fastsr::binding::dims;
using fastsr::binding::exact;

fastsr::Act int8_act(const std::string& name) {
  using fastsr::Act;
  if (name.empty() || name == "none") return Act::None;
  if (name == "relu") return Act::Relu;
  if (name == "prelu") return Act::Prelu;
  if (name == "leaky_relu") return Act::LeakyRelu;
  throw py::value_error("int8 conv2d activation must be none, relu, prelu or leaky_relu, got '" +
                        name + "'");
}

void check_zero(int zero) {
  if (zero < 0 || zero > 255) throw py::value_error("zero point must be in [0, 255]");
}

void check_scale(float scale) {
  if (!(scale > 0.f) || !std::isfinite(scale))
    throw py::value_error("quantisation scale must be positive and finite");
}

// What the direct and Winograd int8 convs check alike: views, scales, the window, the
// epilogue's parameters (slope kept alive in `slope`).
fastsr::Int8ConvParams int8_conv_params(Program& p, const ByteView& x, const std::optional<View>& out,
                                        const std::optional<ByteView>& out_q,
                                        const std::optional<View>& skip,
                                        const fastsr::binding::ConvWindow& window, float x_scale,
                                        int x_zero, float out_scale, int out_zero,
                                        const std::string& activation, py::handle slope_obj,
                                        float alpha, std::vector<float>& slope) {
  if (!out && !out_q)
    throw py::value_error("conv2d_int8: give out (fp32), out_q (uint8) or both");
  if (p.byte_buffer_of(x) < 0 || (out_q && p.byte_buffer_of(*out_q) < 0) ||
      (out && p.buffer_of(*out) < 0) || (skip && p.buffer_of(*skip) < 0))
    throw py::value_error("view does not belong to this Program");
  if (out_q && p.byte_buffer_of(*out_q) == p.byte_buffer_of(x))
    throw py::value_error("conv2d_int8: output overlaps its input");
  check_scale(x_scale), check_zero(x_zero);
  if (out_q) check_scale(out_scale), check_zero(out_zero);
  const View* skip_view = skip ? &*skip : nullptr;
  if (out) check_conv_window("conv2d_int8", x, *out, skip_view, window);
  if (out_q) check_conv_window("conv2d_int8", x, *out_q, skip_view, window);
  if (out && out_q) fastsr::binding::check_same_output("conv2d_int8", *out, *out_q);
  fastsr::Int8ConvParams params;
  params.stride = window.stride, params.dilation = window.dilation;
  params.pad_top = window.pad_top, params.pad_left = window.pad_left;
  params.x_scale = x_scale, params.x_zero = x_zero;
  params.act = int8_act(activation), params.alpha = alpha, params.shuffle = window.shuffle;
  if (params.act == fastsr::Act::Prelu) {
    if (slope_obj.is_none()) throw py::value_error("conv2d_int8: prelu needs a slope array");
    slope = channels(slope_obj, "conv2d_int8 prelu slope", window.cout);
    params.slope = slope.data();
  }
  params.out_scale = out_scale, params.out_zero = out_zero;
  return params;
}

std::vector<float> int8_bias(py::handle bias_obj, int cout) {
  if (bias_obj.is_none()) return std::vector<float>(size_t(cout), 0.f);
  return channels(bias_obj, "conv2d_int8 bias", cout);
}

std::string add_conv2d_int8(Program& p, const ByteView& x, py::handle weight_obj, py::handle w_scale_obj,
                     py::handle bias_obj, float x_scale, int x_zero, std::optional<View> out,
                     std::optional<ByteView> out_q, float out_scale, int out_zero, int stride,
                     int pad_top, int pad_left, int dilation, const std::string& activation,
                     py::handle slope_obj, float alpha, int shuffle, std::optional<View> skip) {
  Array<int8_t> weight = exact<int8_t>(weight_obj, "conv2d_int8 weight", 4);
  const int cout = int(weight.shape(0)), cin = int(weight.shape(1));
  const int kh = int(weight.shape(2)), kw = int(weight.shape(3));
  const fastsr::binding::ConvWindow window{cout, cin, kh, kw, stride, dilation,
                                           pad_top, pad_left, shuffle};
  std::vector<float> slope;
  const fastsr::Int8ConvParams params =
      int8_conv_params(p, x, out, out_q, skip, window, x_scale, x_zero, out_scale, out_zero,
                       activation, slope_obj, alpha, slope);
  std::vector<float> w_scale = channels(w_scale_obj, "conv2d_int8 weight scale", cout);
  std::vector<float> bias = int8_bias(bias_obj, cout);
  fastsr::Int8ConvLayer layer;
  try {
    layer = fastsr::pack_conv_int8(weight.data(), w_scale.data(), bias.data(), cout, cin, kh, kw,
                                   params, fastsr::active_int8_isa());
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  const std::string family = fastsr::int8_isa_name(layer.isa);
  p.add_conv2d_int8(x, out ? &*out : nullptr, out_q ? &*out_q : nullptr, skip ? &*skip : nullptr,
                    std::move(layer));
  return family;
}

std::string add_conv2d_int8_winograd(Program& p, const ByteView& x, py::handle weight_obj,
                                     py::handle w_scale_obj, py::handle tap_scale_obj,
                                     py::handle bias_obj, float x_scale, int x_zero,
                                     std::optional<View> out, std::optional<ByteView> out_q,
                                     float out_scale, int out_zero, const std::string& activation,
                                     py::handle slope_obj, float alpha, std::optional<View> skip) {
  constexpr int taps = fastsr::kInt8WinogradTaps;
  Array<int8_t> weight = exact<int8_t>(weight_obj, "conv2d_int8_winograd weight", 3);
  const int cout = int(weight.shape(1)), cin = int(weight.shape(2));
  if (weight.shape(0) != taps)
    throw py::value_error("conv2d_int8_winograd weight must be (16, cout, cin) taps");
  if (!fastsr::int8_winograd_fits(cin, cout, 3, 3, 1, 1, 1, 1, 1))
    throw py::value_error("conv2d_int8_winograd needs >= 32 input and output channels, "
                          "multiples of 16, got " + std::to_string(cin) + " -> " +
                          std::to_string(cout));
  const fastsr::binding::ConvWindow window{cout, cin, 3, 3, 1, 1, 1, 1, 1};
  std::vector<float> slope;
  const fastsr::Int8ConvParams params =
      int8_conv_params(p, x, out, out_q, skip, window, x_scale, x_zero, out_scale, out_zero,
                       activation, slope_obj, alpha, slope);
  Array<float> w_scale = exact<float>(w_scale_obj, "conv2d_int8_winograd weight scale", 2);
  if (w_scale.shape(0) != taps || w_scale.shape(1) != cout)
    throw py::value_error("conv2d_int8_winograd weight scale must be (16, cout)");
  std::vector<float> tap_scale = channels(tap_scale_obj, "conv2d_int8_winograd tap scale", taps);
  for (float s : tap_scale) check_scale(s);
  std::vector<float> bias = int8_bias(bias_obj, cout);
  fastsr::Int8WinogradLayer layer;
  try {
    layer = fastsr::pack_winograd_int8(weight.data(), w_scale.data(), tap_scale.data(),
                                       bias.data(), cout, cin, params, fastsr::active_int8_isa());
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  const std::string family = fastsr::int8_isa_name(layer.isa);
  p.add_winograd_int8(x, out ? &*out : nullptr, out_q ? &*out_q : nullptr,
                      skip ? &*skip : nullptr, std::move(layer));
  return family;
}

void expect_same(const View& a, const ByteView& b, const Program& p) {
  if (p.buffer_of(a) < 0 || p.byte_buffer_of(b) < 0)
    throw py::value_error("view does not belong to this Program");
  if (a.n != b.n || a.h != b.h || a.w != b.w || a.c != b.c)
    throw py::value_error("shapes differ, " + dims(a.n, a.h, a.w, a.c) + " vs " +
                          dims(b.n, b.h, b.w, b.c));
}

}  // namespace

void bind_int8(py::module_& m, py::class_<Program>& program) {
  m.def("int8_isa", [] { return std::string(fastsr::int8_isa_name(fastsr::active_int8_isa())); },
        "Kernel family int8 steps use now: portable, avx2, avxvnni, avx512vnni, amx, neon or "
        "neon-dotprod (a conv of <= 8 output channels drops avx512vnni for avxvnni or avx2; "
        "one narrower than AMX tiles drops amx for avx512vnni).");
  m.def("supported_int8_isas",
        [] {
          std::vector<std::string> names;
          for (fastsr::Int8Isa isa : fastsr::supported_int8_isas())
            names.push_back(fastsr::int8_isa_name(isa));
          return names;
        },
        "int8 kernel families this build runs on this CPU, best first.");
  m.def("set_int8_isa",
        [](std::optional<std::string> name) {
          // std::invalid_argument reaches Python as ValueError.
          if (name) fastsr::force_int8_isa(fastsr::parse_int8_isa(*name));
          else fastsr::follow_simd_level();
        },
        py::arg("isa"),
        "Force an int8 kernel family among supported_int8_isas() for steps added afterwards; "
        "None follows the SIMD level again.");
  m.attr("INT8_WEIGHT_MAX") = fastsr::kInt8WeightMax;
  py::class_<ByteView>(m, "ByteView", "A channel window onto one of a Program's uint8 buffers.")
      .def_readonly("n", &ByteView::n)
      .def_readonly("h", &ByteView::h)
      .def_readonly("w", &ByteView::w)
      .def_readonly("c", &ByteView::c)
      .def_readonly("pad", &ByteView::pad);
  program
      .def("add_byte_buffer",
           [](Program& p, int n, int h, int w, int c, int pad, int fill) {
             if (n < 1 || h < 1 || w < 1 || c < 1 || pad < 0)
               throw py::value_error("buffer sizes must be positive and pad >= 0");
             check_zero(fill);
             return p.add_byte_buffer({n, h, w, c, pad}, uint8_t(fill));
           },
           py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("pad") = 0,
           py::arg("fill") = 0, "A uint8 buffer whose border reads `fill` (the zero point).")
      .def("byte_view",
           [](const Program& p, int buffer, int offset, int channels) {
             ByteView whole;
             try {
               whole = p.byte_view(buffer, 0, 1);
             } catch (const std::out_of_range&) {
               throw py::value_error("no byte buffer " + std::to_string(buffer));
             }
             if (offset < 0 || channels < 1 || offset + channels > int(whole.pix))
               throw py::value_error("channels exceed the byte buffer's " +
                                     std::to_string(whole.pix));
             return p.byte_view(buffer, offset, channels);
           },
           py::arg("buffer"), py::arg("offset") = 0, py::arg("channels"))
      .def("quantize",
           [](Program& p, const View& x, float scale, int zero, const ByteView& out) {
             expect_same(x, out, p), check_scale(scale), check_zero(zero);
             p.add_quantize(x, scale, zero, out);
           },
           py::arg("x"), py::arg("scale"), py::arg("zero"), py::arg("out"))
      .def("dequantize",
           [](Program& p, const ByteView& x, float scale, int zero, const View& out) {
             expect_same(out, x, p), check_scale(scale), check_zero(zero);
             p.add_dequantize(x, scale, zero, out);
           },
           py::arg("x"), py::arg("scale"), py::arg("zero"), py::arg("out"))
      .def("conv2d_int8", &add_conv2d_int8, py::arg("x"), py::arg("weight"), py::arg("w_scale"),
           py::arg("bias") = py::none(), py::arg("x_scale"), py::arg("x_zero"),
           py::arg("out") = py::none(), py::arg("out_q") = py::none(), py::arg("out_scale") = 1.f,
           py::arg("out_zero") = 0, py::arg("stride") = 1, py::arg("pad_top") = 0,
           py::arg("pad_left") = 0, py::arg("dilation") = 1, py::arg("activation") = "none",
           py::arg("slope") = py::none(), py::arg("alpha") = 0.f, py::arg("shuffle") = 1,
           py::arg("skip") = py::none(),
           "Add an int8 convolution step: u8 x (zero point x_zero) times s8 weights "
           "(|q| <= 63, per-channel w_scale), fp32 epilogue, stored to out (fp32), "
           "requantised to out_q (uint8, out_scale/out_zero), or both in one pass. Returns "
           "the kernel family the step runs.");
  program.def("conv2d_int8_winograd", &add_conv2d_int8_winograd, py::arg("x"), py::arg("weight"),
              py::arg("w_scale"), py::arg("tap_scale"), py::arg("bias") = py::none(),
              py::arg("x_scale"), py::arg("x_zero"), py::arg("out") = py::none(),
              py::arg("out_q") = py::none(), py::arg("out_scale") = 1.f, py::arg("out_zero") = 0,
              py::arg("activation") = "none", py::arg("slope") = py::none(),
              py::arg("alpha") = 0.f, py::arg("skip") = py::none(),
              "Add an int8 Winograd F(2x2, 3x3) step for a 3x3 stride-1 padding-1 conv "
              "(csrc/winograd_int8.h): weight (16, cout, cin) int8 taps of G g G^T (|q| <= 63) "
              "with w_scale (16, cout), the input's taps requantised by tap_scale (16), the "
              "epilogue and outputs as conv2d_int8's. Returns the kernel family.");
  m.def("int8_winograd_fits", &fastsr::int8_winograd_fits, py::arg("cin"), py::arg("cout"),
        py::arg("kh"), py::arg("kw"), py::arg("stride"), py::arg("dilation"), py::arg("pad_top"),
        py::arg("pad_left"), py::arg("shuffle"),
        "Whether conv2d_int8_winograd runs a conv of this shape.");
}
