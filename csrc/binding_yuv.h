// Python face of run_yuv: video planes in and out of a Program.
#pragma once
#include <pybind11/pybind11.h>

#include "program.h"

void bind_yuv(pybind11::class_<fastsr::Program>& program);
