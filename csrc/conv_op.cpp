#include "conv_op.h"

#include <algorithm>
#include <stdexcept>

#include "winograd.h"

namespace fastsr {

namespace {

void set_epilogue(ConvLayer& layer, const ConvSpec& spec) {
  layer.act = spec.act, layer.alpha = spec.alpha;
  if (spec.slope == nullptr) return;
  layer.slope = AlignedFloats(layer.bias.size());
  std::copy(spec.slope, spec.slope + spec.cout, layer.slope.data());
}

}  // namespace

void add_conv(Program& program, const View& x, const View& out, const View* skip,
              const ConvSpec& s) {
  const Simd simd = active_simd();
  const bool fits = winograd_fits(s.cin, s.cout, s.kh, s.kw, s.stride, s.dilation, s.pad_top,
                                  s.pad_left, s.shuffle, simd);
  if (s.algorithm == ConvAlgorithm::Winograd && !fits)
    throw std::invalid_argument(
        "conv2d: Winograd needs a 3x3 stride-1 dilation-1 padding-1 conv without pixel "
        "shuffle, with >= 32 channels in and out in whole SIMD vectors");
  if (fits && s.algorithm != ConvAlgorithm::Direct) {
    WinogradLayer layer = pack_winograd(s.weight, s.bias, s.cout, s.cin, simd);
    set_epilogue(layer.epilogue, s);
    program.add_winograd(x, out, skip, std::move(layer));
    return;
  }
  ConvLayer layer = pack_conv(s.weight, s.bias, s.cout, s.cin, s.kh, s.kw, s.stride, s.dilation,
                              s.pad_top, s.pad_left, simd);
  set_epilogue(layer, s);
  layer.shuffle = s.shuffle;
  program.add_conv2d(x, out, skip, std::move(layer));
}

}  // namespace fastsr
