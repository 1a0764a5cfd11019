// The convolution operator: one call per graph conv, which picks the algorithm (Winograd
// F(4x4,3x3) or direct) and packs the weights for the active SIMD level's configuration.
#pragma once
#include "conv2d.h"
#include "program.h"
#include "view.h"

namespace fastsr {

enum class ConvAlgorithm { Auto, Direct, Winograd };

struct ConvSpec {
  const float* weight;  // OIHW (cout, cin, kh, kw)
  const float* bias;    // cout floats
  int cout, cin, kh, kw;
  int stride = 1, dilation = 1, pad_top = 0, pad_left = 0;
  Act act = Act::None;
  const float* slope = nullptr;  // cout floats for PReLU
  float alpha = 0.f;             // LeakyReLU
  int shuffle = 1;
  Act gate = Act::None;  // gated skip: needs a skip, shuffle 1
  float gate_scale = 1.f, gate_shift = 0.f;
  ConvAlgorithm algorithm = ConvAlgorithm::Auto;
};

// Views and spec already validated by the caller; throws std::invalid_argument when
// Winograd is asked for a layer it cannot run.
void add_conv(Program& program, const View& x, const View& out, const View* skip,
              const ConvSpec& spec);

}  // namespace fastsr
