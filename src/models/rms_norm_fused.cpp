#include "models/rms_norm_fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <vector>

#include "models/bf16_data.h"
#include "util/bf16_bits.h"
#include "util/lanes.h"

namespace fme {
namespace {

// Rows per block of w's gradient partial sums: fixed, so the sum's order does not depend on the threads.
constexpr int64_t kRowBlock = 32;

// Plain loops, vectorized per target clone; the sums in 16 fixed lanes (util/lanes.h), -ffp-contract=off.

// xf = x widened, padded with zeros to whole lanes.
FME_INLINE void widen_padded(const uint16_t* x, float* xf, int64_t d) {
  for (int64_t i = 0; i < d; ++i) xf[i] = bf16_to_float(x[i]);
  for (int64_t i = d; i < lane_padded(d); ++i) xf[i] = 0.0f;
}

FME_TARGET_CLONES void widen_row(const uint16_t* x, float* xf, int64_t d) { widen_padded(x, xf, d); }

// widen_row, and returns sum(xf^2).
FME_TARGET_CLONES float widen_sum_squares(const uint16_t* x, float* xf, int64_t d) {
  widen_padded(x, xf, d);
  const int64_t padded = lane_padded(d);
  float acc[kLanes] = {};
  for (int64_t i = 0; i < padded; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += xf[i + j] * xf[i + j];
  return sum_of_lanes(acc);
}

// y = bf16(w * bf16(xf * inv)): the composite's two roundings.
FME_TARGET_CLONES void normalize_row(const float* xf, float inv, const float* wf, uint16_t* y, int64_t d) {
  for (int64_t i = 0; i < d; ++i) y[i] = float_to_bf16(wf[i] * bf16_to_float(float_to_bf16(xf[i] * inv)));
}

// g = dy * w (fp32, padded with zeros); returns sum(g * xf) over the padded lanes (xf padded with zeros).
FME_TARGET_CLONES float scaled_gradient_dot(const uint16_t* dy, const float* wf, const float* xf, float* g, int64_t d) {
  const int64_t padded = lane_padded(d);
  for (int64_t i = 0; i < d; ++i) g[i] = bf16_to_float(dy[i]) * wf[i];
  for (int64_t i = d; i < padded; ++i) g[i] = 0.0f;
  float acc[kLanes] = {};
  for (int64_t i = 0; i < padded; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += g[i + j] * xf[i + j];
  return sum_of_lanes(acc);
}

// dx = bf16(inv * g - c * xf); dw += dy * bf16(xf * inv) (the normalized value the forward multiplied w by).
FME_TARGET_CLONES void input_and_weight_gradients(const float* g, const float* xf, const uint16_t* dy, float inv, float c,
                                                  uint16_t* dx, float* dw, int64_t d) {
  for (int64_t i = 0; i < d; ++i) {
    dx[i] = float_to_bf16(inv * g[i] - c * xf[i]);
    dw[i] += bf16_to_float(dy[i]) * bf16_to_float(float_to_bf16(xf[i] * inv));
  }
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, double eps) {
    const int64_t d = x.size(-1), rows = d ? x.numel() / d : 0;
    at::Tensor y = at::empty_like(x);
    at::Tensor inv = at::empty({rows}, x.options().dtype(at::kFloat));  // rsqrt(mean(x^2) + eps) per row
    const at::Tensor wf = w.to(at::kFloat);
    const uint16_t* px = bf16_data(x);
    uint16_t* py = bf16_data(y);
    const float* pw = wf.data_ptr<float>();
    float* pinv = inv.data_ptr<float>();
    const float feps = static_cast<float>(eps);
    at::parallel_for(0, rows, 8, [&](int64_t first, int64_t last) {
      std::vector<float> xf(static_cast<size_t>(lane_padded(d)));
      for (int64_t r = first; r < last; ++r) {
        const float ss = widen_sum_squares(px + r * d, xf.data(), d);
        pinv[r] = 1.0f / std::sqrt(ss / static_cast<float>(d) + feps);
        normalize_row(xf.data(), pinv[r], pw, py + r * d, d);
      }
    });
    ctx->save_for_backward({x, w, inv});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &inv = saved[2];
    const at::Tensor dy = grads[0].to(at::kBFloat16).contiguous();
    const int64_t d = x.size(-1), rows = d ? x.numel() / d : 0, blocks = (rows + kRowBlock - 1) / kRowBlock;
    at::Tensor dx = at::empty_like(x);
    at::Tensor partial = at::zeros({blocks, d}, x.options().dtype(at::kFloat));  // w's gradient per row block
    const at::Tensor wf = w.to(at::kFloat);
    const uint16_t *px = bf16_data(x), *pdy = bf16_data(dy);
    uint16_t* pdx = bf16_data(dx);
    const float *pw = wf.data_ptr<float>(), *pinv = inv.data_ptr<float>();
    float* pp = partial.data_ptr<float>();
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
      std::vector<float> xf(static_cast<size_t>(lane_padded(d))), g(xf.size());
      for (int64_t b = first; b < last; ++b)
        for (int64_t r = b * kRowBlock; r < std::min(rows, (b + 1) * kRowBlock); ++r) {
          // n = x * inv, inv = (mean(x^2) + eps)^-1/2: dx = inv * g - (sum(g * x) * inv^3 / D) * x, g = dy * w.
          widen_row(px + r * d, xf.data(), d);
          const float dot = scaled_gradient_dot(pdy + r * d, pw, xf.data(), g.data(), d);
          const float s = pinv[r];
          const float c = dot * (s * s * s) / static_cast<float>(d);
          input_and_weight_gradients(g.data(), xf.data(), pdy + r * d, s, c, pdx + r * d, pp + b * d, d);
        }
    });
    at::Tensor dw = at::zeros({d}, partial.options());
    float* pdw = dw.data_ptr<float>();
    for (int64_t b = 0; b < blocks; ++b)  // the blocks in turn: a fixed order
      for (int64_t i = 0; i < d; ++i) pdw[i] += pp[b * d + i];
    return {dx, dw.to(w.scalar_type()), at::Tensor()};
  }
};

}  // namespace

bool rms_norm_fusable(const at::Tensor& x, const at::Tensor& w) {
  return x.requires_grad() && x.device().is_cpu() && x.is_contiguous() && x.scalar_type() == at::kBFloat16 &&
         w.device().is_cpu() && w.scalar_type() == at::kBFloat16 && w.dim() == 1 && w.is_contiguous() && x.dim() >= 1 &&
         w.size(0) == x.size(-1);
}

at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& w, double eps) { return RmsNormFn::apply(x, w, eps); }

}  // namespace fme
