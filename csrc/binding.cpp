#include <omp.h>
#include <pybind11/pybind11.h>

#include "simd.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastsr C++ CPU backend";
  m.def("simd_level", [] { return fastsr::simd_name(fastsr::active_simd()); },
        "SIMD level the kernels use now.");
  m.def("detected_simd_level", [] { return fastsr::simd_name(fastsr::detected_simd()); },
        "Best SIMD level this CPU supports.");
  m.def("set_simd_level", [](const std::string& name) { fastsr::set_simd(fastsr::parse_simd(name)); },
        py::arg("level"), "Force a SIMD level (portable, avx2, avx512) up to the detected one.");
  m.def("max_threads", [] { return omp_get_max_threads(); });
}
