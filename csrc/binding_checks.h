// Argument checks the bindings share: activation names, exact dtypes, per-channel arrays,
// and whether a convolution's output and input windows fit (int8 and bf16 steps).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "conv2d.h"

namespace fastsr::binding {

namespace py = pybind11;

template <class T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

// A C-contiguous array of exactly dtype T and `ndim` dimensions, or TypeError/ValueError.
template <class T>
Array<T> exact(py::handle obj, const std::string& what, int ndim) {
  if (!py::isinstance<py::array>(obj) ||
      !py::reinterpret_borrow<py::array>(obj).dtype().is(py::dtype::of<T>()))
    throw py::type_error(what + " must be a numpy array of " +
                         std::string(py::str(py::dtype::of<T>())));
  Array<T> a = Array<T>::ensure(obj);
  if (a.ndim() != ndim)
    throw py::value_error(what + " must have " + std::to_string(ndim) + " dimensions");
  return a;
}

inline std::vector<float> channels(py::handle obj, const std::string& what, int n) {
  Array<float> a = exact<float>(obj, what, 1);
  if (a.shape(0) != n)
    throw py::value_error(what + " must have " + std::to_string(n) + " entries");
  return std::vector<float>(a.data(), a.data() + n);
}

inline std::string dims(int n, int h, int w, int c) {
  return "(" + std::to_string(n) + ", " + std::to_string(h) + ", " + std::to_string(w) + ", " +
         std::to_string(c) + ")";
}

struct ConvWindow {
  int cout, cin, kh, kw, stride, dilation, pad_top, pad_left, shuffle;
};

// `op` names the step in messages. x: the input view; out: the output view (n, h, w, c
// after the shuffle); skip, if given, has the output's shape.
template <class In, class Out, class Skip>
void check_conv_window(const std::string& op, const In& x, const Out& out, const Skip* skip,
                       const ConvWindow& k) {
  if (k.stride < 1 || k.dilation < 1 || k.shuffle < 1 || k.kh < 1 || k.kw < 1)
    throw py::value_error(op + ": stride, dilation, pixel shuffle and kernel size must be >= 1");
  if (k.cin != x.c)
    throw py::value_error(op + ": weight expects " + std::to_string(k.cin) +
                          " input channels, the input view has " + std::to_string(x.c));
  if (k.cout != out.c * k.shuffle * k.shuffle || out.h % k.shuffle || out.w % k.shuffle ||
      out.n != x.n)
    throw py::value_error(op + ": output " + dims(out.n, out.h, out.w, out.c) +
                          " does not fit " + std::to_string(k.cout) + " channels shuffled by " +
                          std::to_string(k.shuffle));
  if (skip && (skip->n != out.n || skip->h != out.h || skip->w != out.w || skip->c != out.c))
    throw py::value_error(op + " skip: shapes differ from the output");
  const int oh = out.h / k.shuffle, ow = out.w / k.shuffle;
  const int64_t bottom = int64_t(oh - 1) * k.stride - k.pad_top + int64_t(k.dilation) * (k.kh - 1);
  const int64_t right = int64_t(ow - 1) * k.stride - k.pad_left + int64_t(k.dilation) * (k.kw - 1);
  if (k.pad_top < 0 || k.pad_left < 0 || k.pad_top > x.pad || k.pad_left > x.pad ||
      bottom > x.h - 1 + x.pad || right > x.w - 1 + x.pad)
    throw py::value_error(op + ": the input view's border (" + std::to_string(x.pad) +
                          " px) is too small for this kernel, padding and output size");
}

// A narrow conv's two outputs (fp32 and its u8 or bf16 copy) cover the same pixels.
template <class A, class B>
void check_same_output(const std::string& op, const A& a, const B& b) {
  if (a.n != b.n || a.h != b.h || a.w != b.w || a.c != b.c)
    throw py::value_error(op + ": the two outputs differ, " + dims(a.n, a.h, a.w, a.c) + " vs " +
                          dims(b.n, b.h, b.w, b.c));
}

}  // namespace fastsr::binding
