// Runs fastsr's C++ kernel layer on cases read from stdin and writes the results to
// stdout, so one Python test checks any build (native, or cross-built and run under
// qemu) against the torch reference. Binary protocol, native endianness:
//   case:   int32 op, int32 simd, int32 fields..., then float32 arrays (below)
//   answer: int32 count, float32 values[count]
// op 0 conv2d:     n h w cin cout kh kw stride dilation pad border act shuffle skip algorithm
//                  gate, float alpha gate_scale gate_shift; x (n h w cin), weight (OIHW),
//                  bias (cout), slope (cout),
//                  skip (output's shape, when skip is 1)                -> output NHWC
// op 1 activation: n h w c kind, float alpha lo hi; slope (c), x        -> NHWC
// op 2 resize:     n h w c mode factor; x                               -> NHWC
// op 3 int8 conv2d: n h w cin cout kh kw stride dilation pad border act shuffle skip outputs
//                  x_zero out_zero, float alpha x_scale out_scale; x (n h w cin, quantised
//                  by the Program), weight (OIHW integers), w_scale, bias, slope (cout),
//                  skip (output's shape, when skip is 1)  -> output NHWC; outputs 0: fp32,
//                  1: u8 (dequantised), 2: both from one conv, side by side along channels
// op 4 int8 kernel family:                                              -> {int(Int8Isa)}
// op 5 bf16 conv2d: n h w cin cout kh kw stride dilation pad border act shuffle skip outputs,
//                  float alpha; then op 0's arrays (x rounded to bf16 by the Program)
//                  -> output NHWC, outputs as op 3's (bf16 widened); nothing where no bf16
//                  kernel runs
// op 6 bf16 kernel family:                                              -> {int(Bf16Isa)}
// op 7 bf16 round trip: n h w c; x  -> x rounded to bf16 and widened; nothing as for op 5
// op 8 int8 Winograd F(2x2, 3x3) conv2d: n h w cin cout act x_zero, float alpha x_scale;
//                  x (n h w cin, quantised by the Program), weight (16 cout cin integers),
//                  w_scale (16 cout), tap_scale (16), bias, slope (cout)  -> fp32 NHWC
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <vector>

#include "conv_op.h"
#include "program.h"
#include "simd.h"

using namespace fastsr;

namespace {

bool read_exact(void* dst, size_t bytes) { return std::fread(dst, 1, bytes, stdin) == bytes; }

int32_t read_int() {
  int32_t v;
  if (!read_exact(&v, sizeof v)) throw std::runtime_error("truncated case header");
  return v;
}

float read_float() {
  float v;
  if (!read_exact(&v, sizeof v)) throw std::runtime_error("truncated case header");
  return v;
}

std::vector<float> read_floats(int64_t count) {
  std::vector<float> v(static_cast<size_t>(count));
  if (!read_exact(v.data(), v.size() * sizeof(float))) throw std::runtime_error("truncated array");
  return v;
}

View dense(float* data, int n, int h, int w, int c) {
  View v;
  v.data = data, v.n = n, v.h = h, v.w = w, v.c = c;
  v.pix = c, v.row = int64_t(w) * c, v.img = int64_t(h) * v.row;
  return v;
}

std::vector<float> run(Program& p, std::vector<float>& x) {
  const View &in = p.input(), &out = p.output();
  std::vector<float> y(size_t(out.n) * out.h * out.w * out.c);
  p.run(dense(x.data(), in.n, in.h, in.w, in.c), dense(y.data(), out.n, out.h, out.w, out.c));
  return y;
}

std::vector<float> conv_case() {
  const int n = read_int(), h = read_int(), w = read_int(), cin = read_int(), cout = read_int();
  ConvSpec s{nullptr, nullptr, cout, cin, read_int(), read_int()};
  s.stride = read_int(), s.dilation = read_int(), s.pad_top = s.pad_left = read_int();
  const int border = read_int();
  s.act = Act(read_int());
  s.shuffle = read_int();
  const bool skip = read_int() != 0;
  s.algorithm = ConvAlgorithm(read_int());
  s.gate = Act(read_int());
  s.alpha = read_float(), s.gate_scale = read_float(), s.gate_shift = read_float();
  const int r = s.shuffle, channels = cout / (r * r);
  const int oh = (h + 2 * s.pad_top - s.dilation * (s.kh - 1) - 1) / s.stride + 1;
  const int ow = (w + 2 * s.pad_left - s.dilation * (s.kw - 1) - 1) / s.stride + 1;
  std::vector<float> x = read_floats(int64_t(n) * h * w * cin);
  const std::vector<float> weight = read_floats(int64_t(cout) * cin * s.kh * s.kw);
  const std::vector<float> bias = read_floats(cout), slope = read_floats(cout);
  const int64_t out_size = int64_t(n) * oh * r * ow * r * channels;
  const std::vector<float> skip_values = read_floats(skip ? out_size : 0);
  s.weight = weight.data(), s.bias = bias.data();
  s.slope = s.act == Act::Prelu ? slope.data() : nullptr;

  Program p(2);
  const View in = p.view(p.add_buffer({n, h, w, cin, border}), 0, cin);
  const View out = p.view(p.add_buffer({n, oh * r, ow * r, channels, 0}), 0, channels);
  const View skip_view = p.view(p.add_buffer({n, oh * r, ow * r, channels, 0}), 0, channels);
  std::copy(skip_values.begin(), skip_values.end(), skip_view.data);  // dense: no border
  p.set_input(in);
  p.set_output(out);
  add_conv(p, in, out, skip ? &skip_view : nullptr, s);
  return run(p, x);
}

std::vector<float> int8_conv_case() {
  const int n = read_int(), h = read_int(), w = read_int(), cin = read_int(), cout = read_int();
  const int kh = read_int(), kw = read_int();
  Int8ConvParams c;
  c.stride = read_int(), c.dilation = read_int(), c.pad_top = c.pad_left = read_int();
  const int border = read_int();
  c.act = Act(read_int());
  c.shuffle = read_int();
  const bool skip = read_int() != 0;
  const int outputs = read_int();
  c.x_zero = read_int(), c.out_zero = read_int();
  c.alpha = read_float(), c.x_scale = read_float(), c.out_scale = read_float();
  const int r = c.shuffle, channels = cout / (r * r);
  const int oh = (h + 2 * c.pad_top - c.dilation * (kh - 1) - 1) / c.stride + 1;
  const int ow = (w + 2 * c.pad_left - c.dilation * (kw - 1) - 1) / c.stride + 1;
  std::vector<float> x = read_floats(int64_t(n) * h * w * cin);
  const std::vector<float> weight = read_floats(int64_t(cout) * cin * kh * kw);
  const std::vector<float> w_scale = read_floats(cout), bias = read_floats(cout);
  const std::vector<float> slope = read_floats(cout);
  const int64_t out_size = int64_t(n) * oh * r * ow * r * channels;
  const std::vector<float> skip_values = read_floats(skip ? out_size : 0);
  const std::vector<int8_t> weight_q(weight.begin(), weight.end());
  if (c.act == Act::Prelu) c.slope = slope.data();

  Program p(2);
  const View in = p.view(p.add_buffer({n, h, w, cin, 0}), 0, cin);
  const int in_q_buffer = p.add_byte_buffer({n, h, w, cin, border}, uint8_t(c.x_zero));
  const ByteView in_q = p.byte_view(in_q_buffer, 0, cin);
  const int wide = outputs == 2 ? 2 * channels : channels;
  const int result = p.add_buffer({n, oh * r, ow * r, wide, 0});
  const View out = p.view(result, 0, channels);
  const int out_q_buffer = p.add_byte_buffer({n, oh * r, ow * r, channels, 0}, 0);
  const ByteView out_q = p.byte_view(out_q_buffer, 0, channels);
  const View skip_view = p.view(p.add_buffer({n, oh * r, ow * r, channels, 0}), 0, channels);
  std::copy(skip_values.begin(), skip_values.end(), skip_view.data);  // dense: no border
  p.set_input(in);
  p.set_output(p.view(result, 0, wide));
  p.add_quantize(in, c.x_scale, c.x_zero, in_q);
  Int8ConvLayer layer = pack_conv_int8(weight_q.data(), w_scale.data(), bias.data(), cout, cin, kh,
                                       kw, c, active_int8_isa());
  p.add_conv2d_int8(in_q, outputs == 1 ? nullptr : &out, outputs == 0 ? nullptr : &out_q,
                    skip ? &skip_view : nullptr, std::move(layer));
  if (outputs != 0)
    p.add_dequantize(out_q, c.out_scale, c.out_zero, p.view(result, wide - channels, channels));
  return run(p, x);
}

std::vector<float> int8_winograd_case() {
  const int n = read_int(), h = read_int(), w = read_int(), cin = read_int(), cout = read_int();
  Int8ConvParams c;
  c.pad_top = c.pad_left = 1;
  c.act = Act(read_int());
  c.x_zero = read_int();
  c.alpha = read_float(), c.x_scale = read_float();
  std::vector<float> x = read_floats(int64_t(n) * h * w * cin);
  const std::vector<float> weight = read_floats(int64_t(kInt8WinogradTaps) * cout * cin);
  const std::vector<float> w_scale = read_floats(int64_t(kInt8WinogradTaps) * cout);
  const std::vector<float> tap_scale = read_floats(kInt8WinogradTaps);
  const std::vector<float> bias = read_floats(cout), slope = read_floats(cout);
  const std::vector<int8_t> weight_q(weight.begin(), weight.end());
  if (c.act == Act::Prelu) c.slope = slope.data();

  Program p(2);
  const View in = p.view(p.add_buffer({n, h, w, cin, 0}), 0, cin);
  const ByteView in_q = p.byte_view(p.add_byte_buffer({n, h, w, cin, 1}, uint8_t(c.x_zero)), 0, cin);
  const View out = p.view(p.add_buffer({n, h, w, cout, 0}), 0, cout);
  p.set_input(in);
  p.set_output(out);
  p.add_quantize(in, c.x_scale, c.x_zero, in_q);
  p.add_winograd_int8(in_q, &out, nullptr, nullptr,
                      pack_winograd_int8(weight_q.data(), w_scale.data(), tap_scale.data(),
                                         bias.data(), cout, cin, c, active_int8_isa()));
  return run(p, x);
}

std::vector<float> bf16_conv_case() {
  const int n = read_int(), h = read_int(), w = read_int(), cin = read_int(), cout = read_int();
  const int kh = read_int(), kw = read_int(), stride = read_int(), dilation = read_int();
  const int pad = read_int(), border = read_int();
  const Act act = Act(read_int());
  const int r = read_int();
  const bool skip = read_int() != 0;
  const int outputs = read_int();
  const float alpha = read_float();
  const int channels = cout / (r * r);
  const int oh = (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1;
  const int ow = (w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
  std::vector<float> x = read_floats(int64_t(n) * h * w * cin);
  const std::vector<float> weight = read_floats(int64_t(cout) * cin * kh * kw);
  const std::vector<float> bias = read_floats(cout), slope = read_floats(cout);
  const int64_t out_size = int64_t(n) * oh * r * ow * r * channels;
  const std::vector<float> skip_values = read_floats(skip ? out_size : 0);
  Bf16ConvLayer layer;
  try {
    layer = pack_conv_bf16(weight.data(), bias.data(), act == Act::Prelu ? slope.data() : nullptr,
                           cout, cin, kh, kw, stride, dilation, pad, pad, act, alpha, r);
  } catch (const std::invalid_argument&) {
    return {};  // no bf16 kernel at this level: refused, as bf16_supported() says
  }

  Program p(2);
  const View in = p.view(p.add_buffer({n, h, w, cin, 0}), 0, cin);
  const Bf16View in_b = p.bf16_view(p.add_bf16_buffer({n, h, w, cin, border}), 0, cin);
  const int wide = outputs == 2 ? 2 * channels : channels;
  const int result = p.add_buffer({n, oh * r, ow * r, wide, 0});
  const View out = p.view(result, 0, channels);
  const Bf16View out_b =
      p.bf16_view(p.add_bf16_buffer({n, oh * r, ow * r, channels, 0}), 0, channels);
  const View skip_view = p.view(p.add_buffer({n, oh * r, ow * r, channels, 0}), 0, channels);
  std::copy(skip_values.begin(), skip_values.end(), skip_view.data);  // dense: no border
  p.set_input(in);
  p.set_output(p.view(result, 0, wide));
  p.add_to_bf16(in, in_b);
  p.add_conv2d_bf16(in_b, outputs == 1 ? nullptr : &out, outputs == 0 ? nullptr : &out_b,
                    skip ? &skip_view : nullptr, std::move(layer));
  if (outputs != 0) p.add_from_bf16(out_b, p.view(result, wide - channels, channels));
  return run(p, x);
}

std::vector<float> bf16_round_trip_case() {
  const int n = read_int(), h = read_int(), w = read_int(), c = read_int();
  std::vector<float> x = read_floats(int64_t(n) * h * w * c);
  if (!bf16_supported()) return {};
  Program p(2);
  const View in = p.view(p.add_buffer({n, h, w, c, 0}), 0, c);
  const Bf16View mid = p.bf16_view(p.add_bf16_buffer({n, h, w, c, 1}), 0, c);
  const View out = p.view(p.add_buffer({n, h, w, c, 0}), 0, c);
  p.set_input(in), p.set_output(out);
  p.add_to_bf16(in, mid);
  p.add_from_bf16(mid, out);
  return run(p, x);
}

std::vector<float> activation_case() {
  const int n = read_int(), h = read_int(), w = read_int(), c = read_int();
  PointwiseParams params;
  params.kind = Pointwise(read_int());
  params.alpha = read_float(), params.lo = read_float(), params.hi = read_float();
  std::vector<float> slope = read_floats(c);
  std::vector<float> x = read_floats(int64_t(n) * h * w * c);
  Program p(2);
  const View in = p.view(p.add_buffer({n, h, w, c, 0}), 0, c);
  const View out = p.view(p.add_buffer({n, h, w, c, 0}), 0, c);
  p.set_input(in), p.set_output(out);
  p.add_activation(in, params, slope, out);
  return run(p, x);
}

std::vector<float> resize_case() {
  const int n = read_int(), h = read_int(), w = read_int(), c = read_int();
  const ResizeMode mode = ResizeMode(read_int());
  const int factor = read_int();
  std::vector<float> x = read_floats(int64_t(n) * h * w * c);
  Program p(2);
  const View in = p.view(p.add_buffer({n, h, w, c, 0}), 0, c);
  const View out = p.view(p.add_buffer({n, h * factor, w * factor, c, 0}), 0, c);
  p.set_input(in), p.set_output(out);
  p.add_resize(in, out, mode, factor);
  return run(p, x);
}

}  // namespace

int main() {
  try {
    int32_t op;
    while (read_exact(&op, sizeof op)) {
      set_simd(Simd(read_int()));
      std::vector<float> y = op == 0   ? conv_case()
                             : op == 1 ? activation_case()
                             : op == 2 ? resize_case()
                             : op == 3 ? int8_conv_case()
                             : op == 4 ? std::vector<float>{float(int(active_int8_isa()))}
                             : op == 5 ? bf16_conv_case()
                             : op == 6 ? std::vector<float>{float(int(active_bf16_isa()))}
                             : op == 7 ? bf16_round_trip_case()
                             : op == 8 ? int8_winograd_case()
                                       : throw std::runtime_error("unknown op");
      const int32_t count = int32_t(y.size());
      std::fwrite(&count, sizeof count, 1, stdout);
      std::fwrite(y.data(), sizeof(float), y.size(), stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kernel_check: %s\n", e.what());
    return 2;
  }
  return 0;
}
