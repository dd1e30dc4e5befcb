#include "pipelines/train/cross_entropy_kernel.h"

#include <cmath>

#include "util/bf16_bits.h"
#include "util/exp_clamped.h"
#include "util/lanes.h"

namespace fme {
namespace {

constexpr int64_t kBlock = 1024;  // values widened at a time (a multiple of the lanes)

FME_TARGET_CLONES float row_max(const uint16_t* x, int64_t n) {
  alignas(64) float buf[kBlock];
  float acc[kLanes];
  for (float& a : acc) a = -INFINITY;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = n - i0 < kBlock ? n - i0 : kBlock;
    for (int64_t i = 0; i < b; ++i) buf[i] = bf16_to_float(x[i0 + i]);
    for (int64_t i = b; i < lane_padded(b); ++i) buf[i] = -INFINITY;
    lanes_max(acc, buf, lane_padded(b));  // a NaN passed over here is kept by the sum
  }
  return max_of_lanes(acc);
}

FME_TARGET_CLONES float row_sum_exp(const uint16_t* x, int64_t n, float max) {
  alignas(64) float buf[kBlock];
  float acc[kLanes] = {};
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = n - i0 < kBlock ? n - i0 : kBlock;
    for (int64_t i = 0; i < b; ++i) buf[i] = bf16_to_float(x[i0 + i]) - max;
    for (int64_t i = 0; i < b; ++i) buf[i] = exp_nonpositive(buf[i]);
    for (int64_t i = b; i < lane_padded(b); ++i) buf[i] = 0.0f;
    lanes_add(acc, buf, lane_padded(b));
  }
  return sum_of_lanes(acc);
}

FME_TARGET_CLONES void row_grad(const uint16_t* x, int64_t n, float lse, float scale, uint16_t* dx) {
  alignas(64) float buf[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = n - i0 < kBlock ? n - i0 : kBlock;
    for (int64_t i = 0; i < b; ++i) buf[i] = bf16_to_float(x[i0 + i]) - lse;
    for (int64_t i = 0; i < b; ++i) buf[i] = exp_nonpositive(buf[i]) * scale;
    for (int64_t i = 0; i < b; ++i) dx[i0 + i] = float_to_bf16(buf[i]);
  }
}

}  // namespace

float row_logsumexp(const uint16_t* x, int64_t n) {
  const float m = row_max(x, n);
  if (!std::isfinite(m)) return NAN;  // an infinite (or no finite) logit: no distribution, as in ATen
  return m + std::log(row_sum_exp(x, n, m));
}

void row_cross_entropy_grad(const uint16_t* x, int64_t n, float lse, int64_t label, float scale, uint16_t* dx) {
  if (label < 0) {
    for (int64_t i = 0; i < n; ++i) dx[i] = 0;
    return;
  }
  row_grad(x, n, lse, scale, dx);
  // The target's term, on the rounded softmax value's widening: (p - 1) * scale in fp32, rounded once.
  const float p = exp_nonpositive(bf16_to_float(x[label]) - lse);
  dx[label] = float_to_bf16((p - 1.0f) * scale);
}

}  // namespace fme
