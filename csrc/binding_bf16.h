// Python face of the bf16 steps (bf16 buffers, fp32 <-> bf16, bf16 conv2d).
#pragma once
#include <pybind11/pybind11.h>

#include "program.h"

void bind_bf16(pybind11::module_& m, pybind11::class_<fastsr::Program>& program);
