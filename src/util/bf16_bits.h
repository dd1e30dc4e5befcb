// bf16 <-> fp32 on raw bits, for hand-written loops that the compiler vectorizes (activation.cpp, the fused
// Adam step): c10::BFloat16's conversions are out-of-line calls there and keep such loops scalar.
#pragma once
#include <cstdint>
#include <cstring>

#include "util/target_clones.h"

namespace fme {

FME_INLINE float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
FME_INLINE uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
// Exact: a bf16 is the top half of the fp32 with the same value.
FME_INLINE float bf16_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }
// Round to nearest even, as c10::BFloat16 (and so Tensor.to(bf16)) does; NaN stays a (quiet) NaN.
FME_INLINE uint16_t float_to_bf16(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return f != f ? static_cast<uint16_t>((u >> 16) | 0x40u) : static_cast<uint16_t>(rounded);
}

}  // namespace fme
