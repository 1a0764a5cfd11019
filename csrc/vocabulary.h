// The names the binding parses: the C++ side of fastsr/graph/ir.py's vocabulary.
// tests/test_ir.py checks they are exactly ir's (EPILOGUE_ACTIVATIONS, ACTIVATIONS,
// RESIZE_MODES, CUBIC_A), so a name added on one side only fails a test.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "conv2d.h"
#include "pointwise.h"
#include "resize.h"

namespace fastsr {

template <class E>
using NameTable = std::vector<std::pair<std::string, E>>;

const NameTable<Act>& conv_activations();  // "none" is also accepted: no activation
const NameTable<Pointwise>& pointwise_kinds();
const NameTable<ResizeMode>& resize_modes();

Act parse_act(const std::string& name);
Pointwise parse_pointwise(const std::string& name);
ResizeMode parse_resize_mode(const std::string& name);

}  // namespace fastsr
