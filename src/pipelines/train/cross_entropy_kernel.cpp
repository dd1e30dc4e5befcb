#include "pipelines/train/cross_entropy_kernel.h"

#include <cmath>

#include "util/bf16_bits.h"
#include "util/exp_clamped.h"

namespace fme {
namespace {

constexpr int64_t kBlock = 1024;  // values widened at a time (a multiple of the 16 lanes)
constexpr int kLanes = 16;

// exp(v) for v <= 0 (a logit minus the row's max), 0 below the smallest normal float's logarithm.
FME_INLINE float exp_nonpositive(float v) {
  const float e = exp_clamped(v);
  return v < -87.0f ? 0.0f : e;
}

FME_TARGET_CLONES float row_max(const uint16_t* x, int64_t n) {
  alignas(64) float buf[kBlock];
  float acc[kLanes];
  for (float& a : acc) a = -INFINITY;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = n - i0 < kBlock ? n - i0 : kBlock;
    for (int64_t i = 0; i < b; ++i) buf[i] = bf16_to_float(x[i0 + i]);
    for (int64_t i = b; i < (b + kLanes - 1) / kLanes * kLanes; ++i) buf[i] = -INFINITY;
    for (int64_t i = 0; i < b; i += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] = acc[j] > buf[i + j] ? acc[j] : buf[i + j];  // a NaN may be passed over: the sum keeps it
  }
  float m = acc[0];
  for (int j = 1; j < kLanes; ++j) m = m > acc[j] ? m : acc[j];
  return m;
}

FME_TARGET_CLONES float row_sum_exp(const uint16_t* x, int64_t n, float max) {
  alignas(64) float buf[kBlock];
  float acc[kLanes] = {};
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = n - i0 < kBlock ? n - i0 : kBlock;
    const int64_t padded = (b + kLanes - 1) / kLanes * kLanes;
    for (int64_t i = 0; i < b; ++i) buf[i] = bf16_to_float(x[i0 + i]) - max;
    for (int64_t i = 0; i < b; ++i) buf[i] = exp_nonpositive(buf[i]);
    for (int64_t i = b; i < padded; ++i) buf[i] = 0.0f;
    for (int64_t i = 0; i < padded; i += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += buf[i + j];
  }
  float s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
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
