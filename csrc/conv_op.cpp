#include "conv_op.h"

#include <algorithm>
#include <stdexcept>

#include "winograd.h"

namespace fastsr {

namespace {

void set_epilogue(ConvLayer& layer, const ConvSpec& spec) {
  layer.act = spec.act, layer.alpha = spec.alpha;
  layer.gate = spec.gate, layer.gate_scale = spec.gate_scale, layer.gate_shift = spec.gate_shift;
  if (spec.slope == nullptr) return;
  layer.slope = AlignedFloats(layer.bias.size());
  std::copy(spec.slope, spec.slope + spec.cout, layer.slope.data());
}

}  // namespace

void add_conv(Program& program, const View& x, const View& out, const View* skip,
              const ConvSpec& s) {
  const Simd simd = active_simd();
  const bool fits = winograd_fits(s.cin, s.cout, s.kh, s.kw, s.stride, s.dilation, s.pad_top,
                                  s.pad_left, simd);
  if (s.algorithm == ConvAlgorithm::Winograd && !fits)
    throw std::invalid_argument(
        "conv2d: Winograd needs a 3x3 stride-1 dilation-1 padding-1 conv with >= 32 channels "
        "in and out in whole SIMD vectors");
  if (fits && s.algorithm != ConvAlgorithm::Direct) {
    WinogradLayer layer = pack_winograd(s.weight, s.bias, s.cout, s.cin, simd);
    set_epilogue(layer.epilogue, s);
    if (s.shuffle == 1) {
      program.add_winograd(x, out, skip, std::move(layer));
      return;
    }
    // Winograd's output transform stores whole pixels, so a shuffled conv writes its
    // channels to a buffer of its own, which the shuffle step moves out adding the skip
    // (element by element: the skip may be out itself). 1.25-1.65x faster than the direct
    // conv with the shuffle in its epilogue (64->256 x2, 64->48 x4, 48->48 x4 at 240x135,
    // 2 threads, Xeon SPR).
    const View pre = program.view(program.add_buffer({x.n, x.h, x.w, s.cout, 0}), 0, s.cout);
    program.add_winograd(x, pre, nullptr, std::move(layer));
    program.add_pixel_shuffle(pre, s.shuffle, out, skip);
    return;
  }
  ConvLayer layer = pack_conv(s.weight, s.bias, s.cout, s.cin, s.kh, s.kw, s.stride, s.dilation,
                              s.pad_top, s.pad_left, simd);
  set_epilogue(layer, s);
  layer.shuffle = s.shuffle;
  program.add_conv2d(x, out, skip, std::move(layer));
}

}  // namespace fastsr
