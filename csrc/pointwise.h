// Elementwise ops on NHWC views (any pixel stride). Each is called inside an OpenMP
// parallel region and splits its rows with `omp for`. `out` may alias an input.
#pragma once
#include "view.h"

namespace fastsr {

enum class Pointwise { Relu, Prelu, LeakyRelu, Tanh, Sigmoid, Clamp, Silu };

struct PointwiseParams {
  Pointwise kind = Pointwise::Relu;
  const float* slope = nullptr;  // PReLU, one per channel
  float alpha = 0.f;             // LeakyReLU
  float lo = 0.f, hi = 0.f;      // Clamp
};

void add(const View& a, const View& b, const View& out);
// b has a's shape, or is 1x1 (global) with a.c or 1 channels; plus skip (a's shape) when
// given: RCAN's channel attention and residual in one pass.
void mul(const View& a, const View& b, const View& out, const View* skip = nullptr);
void affine(const View& x, const float* scale, const float* shift, const View& out);
void activation(const View& x, const PointwiseParams& p, const View& out);
void copy(const View& x, const View& out);

}  // namespace fastsr
