#include "optim/adam_kernel.h"

#include <cmath>

#include "util/bf16_bits.h"

namespace fme {
namespace {

FME_INLINE float widen(float g) { return g; }
FME_INLINE float widen(uint16_t g) { return bf16_to_float(g); }

// Plain scalar code the compiler vectorizes once per clone. Each line is one of the ATen chain's ops, in its
// order. Built with -ffp-contract=off (no clone fuses a multiply and an add the chain rounds separately) and
// -fno-math-errno (else sqrt keeps the loop scalar): src/optim/CMakeLists.txt.
template <typename G>
FME_INLINE void update(float* __restrict p, const G* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                       const AdamCoeffs& coeffs) {
  const AdamCoeffs c = coeffs;  // by value: the loads leave the loop
  for (int64_t i = 0; i < n; ++i) {
    const float pi = p[i] * c.decay;
    const float gs = widen(g[i]) * c.grad_scale;
    const float gi = c.l2 != 0 ? gs + c.l2 * pi : gs;  // as the chain, which adds no 0 * p (an inf p stays out)
    const float mi = m[i] + c.one_minus_beta1 * (gi - m[i]);
    const float vi = v[i] * c.beta2 + (c.one_minus_beta2 * gi) * gi;
    const float denom = std::sqrt(vi) / c.sqrt_bc2 + c.eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + c.neg_step_size * (mi / denom);
  }
}

// With the compute copy: the update, then the rounding, a block at a time while it is in L1 (one loop that
// mixes 16- and 32-bit lanes vectorized at half width and ran 30% slower).
template <typename G, bool kCopy>
FME_INLINE void update(float* __restrict p, const G* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                       const AdamCoeffs& c, uint16_t* __restrict copy) {
  if (!kCopy) return update(p, g, m, v, n, c);
  constexpr int64_t kBlock = 1024;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = n - i0 < kBlock ? n - i0 : kBlock;
    update(p + i0, g + i0, m + i0, v + i0, b, c);
    for (int64_t i = i0; i < i0 + b; ++i) copy[i] = float_to_bf16(p[i]);
  }
}

// Target clones must be plain functions: one per (gradient dtype, copy or not).
FME_TARGET_CLONES void update_f32(float* p, const float* g, float* m, float* v, int64_t n, const AdamCoeffs& c) {
  update<float, false>(p, g, m, v, n, c, nullptr);
}
FME_TARGET_CLONES void update_f32_copy(float* p, const float* g, float* m, float* v, int64_t n, const AdamCoeffs& c, uint16_t* copy) {
  update<float, true>(p, g, m, v, n, c, copy);
}
FME_TARGET_CLONES void update_bf16(float* p, const uint16_t* g, float* m, float* v, int64_t n, const AdamCoeffs& c) {
  update<uint16_t, false>(p, g, m, v, n, c, nullptr);
}
FME_TARGET_CLONES void update_bf16_copy(float* p, const uint16_t* g, float* m, float* v, int64_t n, const AdamCoeffs& c,
                                        uint16_t* copy) {
  update<uint16_t, true>(p, g, m, v, n, c, copy);
}

}  // namespace

void adam_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamCoeffs& c, uint16_t* copy) {
  if (copy) update_f32_copy(p, g, m, v, n, c, copy);
  else update_f32(p, g, m, v, n, c);
}

void adam_update(float* p, const uint16_t* g, float* m, float* v, int64_t n, const AdamCoeffs& c, uint16_t* copy) {
  if (copy) update_bf16_copy(p, g, m, v, n, c, copy);
  else update_bf16(p, g, m, v, n, c);
}

}  // namespace fme
