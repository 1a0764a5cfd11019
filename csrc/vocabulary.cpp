#include "vocabulary.h"

#include <stdexcept>

namespace fastsr {

const NameTable<Act>& conv_activations() {
  static const NameTable<Act> table = {
      {"relu", Act::Relu}, {"prelu", Act::Prelu}, {"leaky_relu", Act::LeakyRelu},
      {"tanh", Act::Tanh}, {"sigmoid", Act::Sigmoid}, {"silu", Act::Silu}};
  return table;
}

const NameTable<Pointwise>& pointwise_kinds() {
  static const NameTable<Pointwise> table = {
      {"relu", Pointwise::Relu},       {"prelu", Pointwise::Prelu},
      {"leaky_relu", Pointwise::LeakyRelu}, {"tanh", Pointwise::Tanh},
      {"sigmoid", Pointwise::Sigmoid}, {"silu", Pointwise::Silu},
      {"clamp", Pointwise::Clamp}};
  return table;
}

const NameTable<ResizeMode>& resize_modes() {
  static const NameTable<ResizeMode> table = {
      {"bicubic", ResizeMode::Bicubic}, {"bilinear", ResizeMode::Bilinear},
      {"nearest", ResizeMode::Nearest}};
  return table;
}

namespace {

template <class E>
E parse(const NameTable<E>& table, const std::string& name, const std::string& what) {
  std::string expected;
  for (const auto& [known, value] : table) {
    if (known == name) return value;
    expected += (expected.empty() ? "" : ", ") + known;
  }
  throw std::invalid_argument("unknown " + what + " '" + name + "', expected one of: " +
                              expected);
}

}  // namespace

Act parse_act(const std::string& name) {
  if (name.empty() || name == "none") return Act::None;
  return parse(conv_activations(), name, "conv activation");
}

Pointwise parse_pointwise(const std::string& name) {
  return parse(pointwise_kinds(), name, "activation");
}

ResizeMode parse_resize_mode(const std::string& name) {
  return parse(resize_modes(), name, "resize mode");
}

}  // namespace fastsr
