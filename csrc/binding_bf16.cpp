#include "binding_bf16.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "binding_checks.h"
#include "vocabulary.h"

namespace py = pybind11;
using fastsr::Bf16View;
using fastsr::Program;
using fastsr::View;
using namespace fastsr::binding;

namespace {

void expect_bf16() {
  if (!fastsr::bf16_supported())
    throw py::value_error("bf16 steps need a bf16 dot product at the active SIMD level "
                          "(avx512_bf16 at avx512, FEAT_BF16 at neon; " +
                          fastsr::simd_name(fastsr::active_simd()) + " here)");
}

std::string add_conv2d_bf16(Program& p, const Bf16View& x, py::handle weight_obj, py::handle bias_obj,
                     std::optional<View> out, std::optional<Bf16View> out_bf16, int stride,
                     int pad_top, int pad_left, int dilation, const std::string& activation,
                     py::handle slope_obj, float alpha, int shuffle, std::optional<View> skip) {
  expect_bf16();
  if (!out && !out_bf16)
    throw py::value_error("conv2d_bf16: give out (fp32), out_bf16 or both");
  if (p.bf16_buffer_of(x) < 0 || (out_bf16 && p.bf16_buffer_of(*out_bf16) < 0) ||
      (out && p.buffer_of(*out) < 0) || (skip && p.buffer_of(*skip) < 0))
    throw py::value_error("view does not belong to this Program");
  if (out_bf16 && p.bf16_buffer_of(*out_bf16) == p.bf16_buffer_of(x))
    throw py::value_error("conv2d_bf16: output overlaps its input");
  Array<float> weight = exact<float>(weight_obj, "conv2d_bf16 weight", 4);
  const int cout = int(weight.shape(0)), cin = int(weight.shape(1));
  const int kh = int(weight.shape(2)), kw = int(weight.shape(3));
  const ConvWindow window{cout, cin, kh, kw, stride, dilation, pad_top, pad_left, shuffle};
  const View* skip_view = skip ? &*skip : nullptr;
  if (out) check_conv_window("conv2d_bf16", x, *out, skip_view, window);
  if (out_bf16) check_conv_window("conv2d_bf16", x, *out_bf16, skip_view, window);
  if (out && out_bf16) check_same_output("conv2d_bf16", *out, *out_bf16);
  std::vector<float> bias(size_t(cout), 0.f);
  if (!bias_obj.is_none()) bias = channels(bias_obj, "conv2d_bf16 bias", cout);
  const fastsr::Act act = fastsr::parse_act(activation);
  std::vector<float> slope;
  if (act == fastsr::Act::Prelu) {
    if (slope_obj.is_none()) throw py::value_error("conv2d_bf16: prelu needs a slope array");
    slope = channels(slope_obj, "conv2d_bf16 prelu slope", cout);
  }
  fastsr::Bf16ConvLayer layer = fastsr::pack_conv_bf16(
      weight.data(), bias.data(), slope.empty() ? nullptr : slope.data(), cout, cin, kh, kw,
      stride, dilation, pad_top, pad_left, act, alpha, shuffle);
  const std::string family = fastsr::bf16_isa_name(layer.isa);
  p.add_conv2d_bf16(x, out ? &*out : nullptr, out_bf16 ? &*out_bf16 : nullptr, skip_view,
                    std::move(layer));
  return family;
}

void expect_same(const View& a, const Bf16View& b, const Program& p) {
  if (p.buffer_of(a) < 0 || p.bf16_buffer_of(b) < 0)
    throw py::value_error("view does not belong to this Program");
  if (a.n != b.n || a.h != b.h || a.w != b.w || a.c != b.c)
    throw py::value_error("shapes differ, " + dims(a.n, a.h, a.w, a.c) + " vs " +
                          dims(b.n, b.h, b.w, b.c));
}

}  // namespace

void bind_bf16(py::module_& m, py::class_<Program>& program) {
  m.def("bf16_supported", &fastsr::bf16_supported,
        "Whether bf16 steps run here: avx512_bf16 at the avx512 level, FEAT_BF16 at neon.");
  m.def("bf16_isa", [] { return std::string(fastsr::bf16_isa_name(fastsr::active_bf16_isa())); },
        "The bf16 kernel family bf16 steps use now: amx, avx512bf16, neon-bf16 or none (a conv "
        "narrower than AMX tiles drops amx for avx512bf16).");
  m.def("bf16_isa_for",
        [](int cin, int cout) {
          if (cin < 1 || cout < 1) throw py::value_error("channel counts must be positive");
          return std::string(fastsr::bf16_isa_name(
              fastsr::bf16_isa_for(fastsr::active_bf16_isa(), cin, cout)));
        },
        py::arg("cin"), py::arg("cout"),
        "The bf16 kernel family a conv of cin -> cout channels would run on now.");
  m.def("supported_bf16_isas",
        [] {
          std::vector<std::string> names;
          for (fastsr::Bf16Isa isa : fastsr::supported_bf16_isas())
            names.push_back(fastsr::bf16_isa_name(isa));
          return names;
        },
        "bf16 kernel families this build runs on this CPU, best first.");
  m.def("set_bf16_isa",
        [](std::optional<std::string> name) {
          // std::invalid_argument reaches Python as ValueError.
          fastsr::force_bf16_isa(name ? std::optional(fastsr::parse_bf16_isa(*name))
                                      : std::nullopt);
        },
        py::arg("isa"),
        "Force a bf16 kernel family among supported_bf16_isas() for steps added afterwards; "
        "None follows the SIMD level again. Below the families' SIMD level there is none.");
  py::class_<Bf16View>(m, "Bf16View", "A channel window onto one of a Program's bf16 buffers.")
      .def_readonly("n", &Bf16View::n)
      .def_readonly("h", &Bf16View::h)
      .def_readonly("w", &Bf16View::w)
      .def_readonly("c", &Bf16View::c)
      .def_readonly("pad", &Bf16View::pad);
  program
      .def("add_bf16_buffer",
           [](Program& p, int n, int h, int w, int c, int pad) {
             if (n < 1 || h < 1 || w < 1 || c < 1 || pad < 0)
               throw py::value_error("buffer sizes must be positive and pad >= 0");
             return p.add_bf16_buffer({n, h, w, c, pad});
           },
           py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("pad") = 0,
           "A bf16 buffer with a zero border of `pad` pixels.")
      .def("bf16_view",
           [](const Program& p, int buffer, int offset, int channels) {
             Bf16View whole;
             try {
               whole = p.bf16_view(buffer, 0, 1);
             } catch (const std::out_of_range&) {
               throw py::value_error("no bf16 buffer " + std::to_string(buffer));
             }
             if (offset < 0 || channels < 1 || offset + channels > int(whole.pix))
               throw py::value_error("channels exceed the bf16 buffer's " +
                                     std::to_string(whole.pix));
             return p.bf16_view(buffer, offset, channels);
           },
           py::arg("buffer"), py::arg("offset") = 0, py::arg("channels"))
      .def("to_bf16",
           [](Program& p, const View& x, const Bf16View& out) {
             expect_bf16(), expect_same(x, out, p);
             p.add_to_bf16(x, out);
           },
           py::arg("x"), py::arg("out"), "Add a step rounding x to bf16 (nearest, ties to even).")
      .def("from_bf16",
           [](Program& p, const Bf16View& x, const View& out) {
             expect_bf16(), expect_same(out, x, p);
             p.add_from_bf16(x, out);
           },
           py::arg("x"), py::arg("out"), "Add a step widening bf16 x to fp32 (exact).")
      .def("conv2d_bf16", &add_conv2d_bf16, py::arg("x"), py::arg("weight"),
           py::arg("bias") = py::none(), py::arg("out") = py::none(),
           py::arg("out_bf16") = py::none(), py::arg("stride") = 1, py::arg("pad_top") = 0,
           py::arg("pad_left") = 0, py::arg("dilation") = 1, py::arg("activation") = "none",
           py::arg("slope") = py::none(), py::arg("alpha") = 0.f, py::arg("shuffle") = 1,
           py::arg("skip") = py::none(),
           "Add a bf16 convolution step: bf16 x times float32 OIHW weights rounded to bf16, "
           "fp32 accumulation and epilogue, stored to out (fp32), out_bf16 (rounded) or both in "
           "one pass. Returns the kernel family that runs it.");
}
