// Row reductions for hand-written vectorized loops (util/target_clones.h) in 16 fixed lanes: whatever vectors
// a clone holds them in, each lane does the same operations in the same order, so a max or a sum has the same
// bits on every ISA (with -ffp-contract=off for sums).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "util/target_clones.h"

namespace fme {

constexpr int kLanes = 16;

// n rounded up to whole lanes: a buffer padded to this with the reduction's identity (-inf, 0).
FME_INLINE int64_t lane_padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// acc[j] = max(acc[j], buf[i + j]) over buf[0, n), n a multiple of kLanes. A NaN may be passed over.
// In GCC's vector types, 8 lanes each: GCC vectorizes no `a > b ? a : b` over plain arrays (16 vmaxss per
// 16 values), and lowers a 16-lane vector type to scalars for AVX2. Elementwise, so the same bits anywhere.
FME_INLINE void lanes_max(float* acc, const float* buf, int64_t n) {
  typedef float f32x8 __attribute__((vector_size(32)));
  static_assert(kLanes == 16, "two 8-lane halves");
  f32x8 a0, a1;
  std::memcpy(&a0, acc, sizeof a0);
  std::memcpy(&a1, acc + 8, sizeof a1);
  for (int64_t i = 0; i < n; i += kLanes) {
    f32x8 b0, b1;
    std::memcpy(&b0, buf + i, sizeof b0);
    std::memcpy(&b1, buf + i + 8, sizeof b1);
    a0 = a0 > b0 ? a0 : b0;
    a1 = a1 > b1 ? a1 : b1;
  }
  std::memcpy(acc, &a0, sizeof a0);
  std::memcpy(acc + 8, &a1, sizeof a1);
}
// acc[j] += buf[i + j] over buf[0, n), n a multiple of kLanes.
FME_INLINE void lanes_add(float* acc, const float* buf, int64_t n) {
  for (int64_t i = 0; i < n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += buf[i + j];
}
FME_INLINE float max_of_lanes(const float* acc) {
  float m = acc[0];
  for (int j = 1; j < kLanes; ++j) m = m > acc[j] ? m : acc[j];
  return m;
}
FME_INLINE float sum_of_lanes(const float* acc) {
  float s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

}  // namespace fme
