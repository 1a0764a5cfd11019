// Python face of the int8 steps (byte buffers, quantize/dequantize, int8 conv2d).
#pragma once
#include <pybind11/pybind11.h>

#include "program.h"

void bind_int8(pybind11::module_& m, pybind11::class_<fastsr::Program>& program);
