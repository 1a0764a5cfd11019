// bf16 direct convolution and the fp32 <-> bf16 steps, AArch64 FEAT_BF16 build (bfdot,
// bfcvtn; chosen at run time by HWCAP2 / sysctl). bfdot by lane: one 16-byte load of a
// pixel's input holds 4 channel pairs and feeds 4 weight vectors each, the shape of the
// int8 sdot kernel.
#include <arm_neon.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include <omp.h>

#include "conv2d_bf16.h"

namespace fastsr {
namespace {

#include "ops_neon.inc"
#include "microkernel.inc"
#include "conv2d_store.inc"

struct B16 : Bf16Tile<Bf16Isa::NeonBf16> {
  static constexpr int pairs_per_load = 4;
  using Pair = bfloat16x8_t;  // 4 lanes of two bf16 each
  static Pair load_w(const uint16_t* p) { return vreinterpretq_bf16_u16(vld1q_u16(p)); }
  static Pair load_x(const uint16_t* p) { return vreinterpretq_bf16_u16(vld1q_u16(p)); }
  static Pair broadcast_pair(const uint16_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return vreinterpretq_bf16_u32(vdupq_n_u32(v));
  }
  static Pair broadcast_single(const uint16_t* p) { return vreinterpretq_bf16_u32(vdupq_n_u32(*p)); }
  static Reg dot(Reg acc, Pair x, Pair w) { return vbfdotq_f32(acc, w, x); }
  template <int L>
  static Reg dot_lane(Reg acc, Pair x, Pair w) { return vbfdotq_laneq_f32(acc, w, x, L); }
  // bfcvtn rounds by FPCR.RMode: nearest, ties to even, as every OS starts a thread.
  static void store_bf16(uint16_t* p, Reg v, int n) {
    const uint16x4_t rounded = vreinterpret_u16_bf16(vcvt_bf16_f32(v));
    if (n == V) return vst1_u16(p, rounded);
    uint16_t lanes[V];
    vst1_u16(lanes, rounded);
    for (int k = 0; k < n; ++k) p[k] = lanes[k];
  }
  static Reg load_bf16(const uint16_t* p, int n) {
    uint16x4_t half;
    if (n == V) {
      half = vld1_u16(p);
    } else {
      uint16_t lanes[V] = {};
      for (int k = 0; k < n; ++k) lanes[k] = p[k];
      half = vld1_u16(lanes);
    }
    return vreinterpretq_f32_u32(vshll_n_u16(half, 16));
  }
};

#include "conv2d_bf16_kernel.inc"

}  // namespace

extern const Bf16Kernels kNeonBf16Kernels = {run_conv_bf16, rows_to_bf16, rows_from_bf16};

}  // namespace fastsr
