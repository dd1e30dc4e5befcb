// One Adam/AdamW step over a contiguous fp32 piece, in one pass: each element of p, g, m and v is read once
// and p, m and v written once (and, for mixed precision, the bf16 compute copy of p written beside it).
// Hand-written because ATen has no fused Adam on the CPU in 1.13 (torch's _fused_adam is CUDA-only there),
// and the same update as eight ATen ops (adam.cpp's chain) walks each piece eight times and pays eight
// dispatches per 64 Ki elements.
//
// The arithmetic is the ATen chain's, op for op and in fp32 (the scalars rounded to float as ATen rounds
// them), so the two agree to the last bit or two:
//   p *= decay;  g = g * grad_scale + l2 * p;  m = m + (1 - b1) * (g - m)   (lerp, weight < 0.5);
//   v = v * b2 + ((1 - b2) * g) * g;  p = p + (-step_size) * (m / (sqrt(v) / sqrt_bc2 + eps)).
// A bf16 gradient is widened exactly first (the values a cast to fp32 gives), and the copy is p rounded to
// nearest even (what p.to(bf16) gives), so neither changes a bit of the result.
#pragma once
#include <cstdint>

namespace fme {

struct AdamCoeffs {
  float decay = 1;       // 1 - lr * wd (AdamW), else 1
  float grad_scale = 1;  // a global-norm clip's factor
  float l2 = 0;          // Adam's L2 decay folded into the gradient
  float one_minus_beta1 = 0.1f, beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float sqrt_bc2 = 1, eps = 1e-8f, neg_step_size = 0;
};

// p, m, v: [n] updated in place; g: [n] fp32 or bf16 (raw bits); copy: [n] bf16 bits receiving the new p,
// or null. No threading (the caller walks pieces on its threads); util/target_clones.h.
void adam_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamCoeffs& c, uint16_t* copy);
void adam_update(float* p, const uint16_t* g, float* m, float* v, int64_t n, const AdamCoeffs& c, uint16_t* copy);

}  // namespace fme
