#include "models/activation.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

#include "util/bf16_bits.h"

namespace fme {
namespace {

// Hand-written because ATen 1.13 has no fused bf16 kernel for these (see the header): one pass, fp32 math.
// Everything below is branch-free scalar code on purpose: the compiler vectorizes the loops that call it,
// once per target clone (util/target_clones.h).

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

// x * sigmoid(z): z = x (silu) or z = 2 sqrt(2/pi) (x + 0.044715 x^3) (tanh gelu).
template <bool kGelu>
FME_INLINE float activate(float x) {
  constexpr float k0 = 1.5957691216057308f;           // 2 sqrt(2/pi)
  constexpr float k1 = 1.5957691216057308f * 0.044715f;
  const float z = kGelu ? x * (k0 + k1 * (x * x)) : x;
  return x / (1.0f + exp_clamped(-z));
}

// The loops, one per (activation, dtype): target clones must be plain functions, not templates.
template <bool kGelu>
FME_INLINE void loop_f32(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = activate<kGelu>(x[i]);
}
// bf16 through a small fp32 buffer (three simple loops, each vectorized).
template <bool kGelu>
FME_INLINE void loop_bf16(uint16_t* x, int64_t n) {
  constexpr int64_t kChunk = 512;
  alignas(64) float buf[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = n - i0 < kChunk ? n - i0 : kChunk;
    for (int64_t i = 0; i < m; ++i) buf[i] = bf16_to_float(x[i0 + i]);
    loop_f32<kGelu>(buf, m);
    for (int64_t i = 0; i < m; ++i) x[i0 + i] = float_to_bf16(buf[i]);
  }
}
FME_TARGET_CLONES void silu_f32(float* x, int64_t n) { loop_f32<false>(x, n); }
FME_TARGET_CLONES void gelu_f32(float* x, int64_t n) { loop_f32<true>(x, n); }
FME_TARGET_CLONES void silu_bf16(uint16_t* x, int64_t n) { loop_bf16<false>(x, n); }
FME_TARGET_CLONES void gelu_bf16(uint16_t* x, int64_t n) { loop_bf16<true>(x, n); }

// Whether the fused kernel applies; otherwise ATen's ops run.
bool fused(const at::Tensor& x) {
  return x.device().is_cpu() && x.is_contiguous() && !x.requires_grad() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16);
}

void apply(at::Tensor& x, void (*f32)(float*, int64_t), void (*bf16)(uint16_t*, int64_t)) {
  const int64_t n = x.numel();
  constexpr int64_t kGrain = 1 << 15;  // elements per task: large enough that scheduling costs nothing
  if (x.scalar_type() == at::kFloat) {
    float* p = x.data_ptr<float>();
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { f32(p + b, e - b); });
  } else {
    auto* p = reinterpret_cast<uint16_t*>(x.data_ptr<at::BFloat16>());
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { bf16(p + b, e - b); });
  }
}

}  // namespace

void silu_in_place(at::Tensor& x) {
  if (fused(x)) apply(x, silu_f32, silu_bf16);
  else if (x.requires_grad()) x = at::silu(x);  // autograd: silu's backward reads the input
  else at::silu_(x);
}

void gelu_tanh_in_place(at::Tensor& x) {
  if (fused(x)) apply(x, gelu_f32, gelu_bf16);
  else x = at::gelu(x, "tanh");
}

}  // namespace fme
