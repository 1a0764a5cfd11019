#include "binding_yuv.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <utility>

namespace py = pybind11;
using fastsr::Plane;
using fastsr::Program;
using fastsr::YuvFrame;

namespace {

std::string size_text(int h, int w) { return std::to_string(h) + " x " + std::to_string(w); }

// A 2-D uint8 (8 bits) or uint16 (9-16 bits) plane of h x w, columns contiguous, rows and
// data aligned to the sample size.
Plane plane_of(py::handle obj, const std::string& what, int bits, int h, int w, bool write) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(what + " must be a numpy array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  const py::ssize_t size = bits > 8 ? 2 : 1;
  if (a.dtype().kind() != 'u' || a.itemsize() != size || (size > 1 && a.dtype().byteorder() == '>'))
    throw py::type_error(what + " must be " + (size > 1 ? "native uint16" : "uint8") + " for " +
                         std::to_string(bits) + "-bit video, got " + std::string(py::str(a.dtype())));
  if (a.ndim() != 2 || a.shape(0) != h || a.shape(1) != w)
    throw py::value_error(what + " must be " + size_text(h, w) + ", got shape " +
                          std::string(py::str(obj.attr("shape"))));
  if (a.strides(1) != size || a.strides(0) % size ||
      reinterpret_cast<uintptr_t>(a.data()) % size)
    throw py::value_error(what + ": samples along a row must be contiguous and aligned");
  if (write && !a.writeable()) throw py::value_error(what + " is read-only");
  Plane p;
  p.data = static_cast<char*>(const_cast<void*>(a.data()));
  p.type = size > 1 ? fastsr::PixelType::U16 : fastsr::PixelType::U8;
  p.h = h, p.w = w, p.row = a.strides(0);
  return p;
}

// Y, Cb, Cr planes of an h x w frame whose chroma is subsampled by 2^shift.
YuvFrame frame_of(py::handle planes_obj, const std::string& what, std::pair<int, int> shift,
                  std::pair<bool, bool> cosited, int bits, int h, int w, bool write) {
  if (shift.first < 0 || shift.first > 1 || shift.second < 0 || shift.second > 1)
    throw py::value_error(what + " chroma shifts must be 0 or 1, got (" +
                          std::to_string(shift.first) + ", " + std::to_string(shift.second) + ")");
  if (!py::isinstance<py::sequence>(planes_obj) || py::len(planes_obj) != 3)
    throw py::value_error(what + " must be three planes (Y, Cb, Cr)");
  const auto planes = py::reinterpret_borrow<py::sequence>(planes_obj);
  const int ch = (h + (1 << shift.first) - 1) >> shift.first;
  const int cw = (w + (1 << shift.second) - 1) >> shift.second;
  YuvFrame f;
  f.shift_h = shift.first, f.shift_w = shift.second;
  f.cosited_h = cosited.first, f.cosited_w = cosited.second;
  f.y = plane_of(planes[0], what + " Y", bits, h, w, write);
  f.cb = plane_of(planes[1], what + " Cb", bits, ch, cw, write);
  f.cr = plane_of(planes[2], what + " Cr", bits, ch, cw, write);
  return f;
}

void run_yuv(Program& p, py::handle src_obj, py::handle dst_obj, std::pair<int, int> src_shift,
             std::pair<int, int> dst_shift, int bits, bool full_range, double kr, double kb,
             std::pair<bool, bool> src_cosited, std::pair<bool, bool> dst_cosited) {
  const fastsr::View &in = p.input(), &out = p.output();
  if (in.data == nullptr || out.data == nullptr)
    throw py::value_error("the Program has no input or output view set");
  const int model_channels = p.color() == fastsr::ColorModel::Rgb ? 3 : 1;
  if (in.n != 1 || in.c != model_channels || out.c != model_channels)
    throw py::value_error("run_yuv takes one frame through an 'rgb' or 'y' Program (set_color)");
  if (bits < 8 || bits > 16) throw py::value_error("bits must be 8 to 16, got " + std::to_string(bits));
  if (!(kr > 0 && kb > 0 && kr + kb < 1))
    throw py::value_error("the luma weights need 0 < kr, 0 < kb and kr + kb < 1");
  const YuvFrame src = frame_of(src_obj, "src", src_shift, src_cosited, bits, in.h, in.w, false);
  const YuvFrame dst = frame_of(dst_obj, "dst", dst_shift, dst_cosited, bits, out.h, out.w, true);
  if (p.color() == fastsr::ColorModel::Y) {  // one integer chroma factor per axis
    const int scale = out.h / in.h;
    for (int axis = 0; axis < 2; ++axis) {
      const int up = axis ? scale << src.shift_w : scale << src.shift_h;
      const int down = 1 << (axis ? dst.shift_w : dst.shift_h);
      if (up % down)
        throw py::value_error("run_yuv: a x" + std::to_string(scale) +
                              " Y model cannot take chroma subsampled " +
                              (axis ? "horizontally" : "vertically") +
                              " to one subsampled more (no integer chroma factor)");
    }
  }
  const fastsr::YuvCoding coding = fastsr::yuv_coding(bits, full_range, kr, kb);
  py::gil_scoped_release release;
  p.run_yuv(src, dst, coding);
}

}  // namespace

void bind_yuv(py::class_<Program>& program) {
  program.def("run_yuv", &run_yuv, py::arg("src"), py::arg("dst"), py::arg("src_shift"),
              py::arg("dst_shift"), py::arg("bits"), py::arg("full_range"), py::arg("kr"),
              py::arg("kb"), py::arg("src_cosited") = std::make_pair(false, false),
              py::arg("dst_cosited") = std::make_pair(false, false),
              "Upscale one video frame from planes to planes: src and dst are (Y, Cb, Cr) "
              "arrays (uint8 for 8 bits, uint16 up to 16) of the input and output size, "
              "chroma subsampled by 2^shift (rows, columns); bits and full_range say how "
              "the codes are quantised, kr and kb the video's luma weights; cosited (rows, "
              "columns) says chroma lies on the first luma of its block (MPEG-2/H.264 "
              "'left' is (False, True)), else at its centre. The GIL is released.");
}
