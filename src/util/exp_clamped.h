// exp for hand-written vectorized loops (util/target_clones.h): libm's expf is an out-of-line call that keeps
// a loop scalar, and ATen's vectorized exp is not reachable from plain C++ loops.
#pragma once
#include <cstdint>

#include "util/bf16_bits.h"

namespace fme {

// exp(v), v clamped to [-87, 88] (the result stays a normal float): 2^n p(r) with n = round(v / ln 2) and
// r = v - n ln 2 (ln 2 in two parts), p Cephes' expf polynomial (within 2 ulp of exp on that range).
FME_INLINE float exp_clamped(float v) {
  v = v < -87.0f ? -87.0f : (v > 88.0f ? 88.0f : v);
  const float n = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23
  const float r = (v - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  return p * bits_to_float(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
}

// exp(v) for v <= 0 (a value minus its row's max): exactly 0 below the smallest normal float's logarithm
// (and for -inf, a masked value), where exp_clamped would give 1.6e-38.
FME_INLINE float exp_nonpositive(float v) {
  const float e = exp_clamped(v);
  return v < -87.0f ? 0.0f : e;
}

}  // namespace fme
