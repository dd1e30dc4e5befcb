// Adam / AdamW: one fused pass over cache-sized pieces (adam_kernel.h), or ATen ops elsewhere (see adam.h for the math).
#include "optim/adam.h"

#include <ATen/ATen.h>

#include <cmath>

#include "optim/adam_kernel.h"

namespace fme {

void validate(const AdamOptions& o) {
  if (!o.schedule) require_hyper(o.lr > 0, "lr", o.lr, "> 0");
  require_hyper(o.beta1 >= 0 && o.beta1 < 1, "beta1", o.beta1, "in [0, 1)");
  require_hyper(o.beta2 >= 0 && o.beta2 < 1, "beta2", o.beta2, "in [0, 1)");
  require_hyper(o.eps > 0, "eps", o.eps, "> 0");
  require_hyper(o.weight_decay >= 0, "weight_decay", o.weight_decay, ">= 0");
}

namespace {
AdamOptions validated(AdamOptions o) {
  validate(o);
  return o;
}
}  // namespace

Adam::Adam(std::vector<OptParam> params, AdamOptions options)
    : ParamOptimizer(std::move(params),
                     options.schedule ? options.schedule : constant_schedule(validated(options).lr)),
      options_(validated(std::move(options))) {
  allocate_state({"exp_avg", "exp_avg_sq"}, /*with_step=*/true);
}

void Adam::update(size_t k, const at::Tensor& grad, double grad_scale, double lr) {
  const AdamOptions& o = options_;
  const int64_t t = ++param_step(k);
  // Same scalar expressions as torch's adam/adamw so the results agree to rounding.
  const double bias_correction1 = 1 - std::pow(o.beta1, static_cast<double>(t));
  const double bias_correction2 = 1 - std::pow(o.beta2, static_cast<double>(t));
  const double step_size = lr / bias_correction1;
  const double sqrt_bc2 = std::sqrt(bias_correction2);
  const double l2 = o.decoupled_weight_decay ? 0.0 : o.weight_decay;
  const double decay = o.decoupled_weight_decay && o.weight_decay != 0 ? 1 - lr * o.weight_decay : 1.0;
  const at::Tensor& exp_avg_all = flat_state(k, 0);     // [numel] fp32
  const at::Tensor& exp_avg_sq_all = flat_state(k, 1);  // [numel] fp32
  AdamCoeffs c;
  c.decay = static_cast<float>(decay);
  c.grad_scale = static_cast<float>(grad_scale);
  c.l2 = static_cast<float>(l2);
  c.one_minus_beta1 = static_cast<float>(1 - o.beta1);
  c.beta2 = static_cast<float>(o.beta2);
  c.one_minus_beta2 = static_cast<float>(1 - o.beta2);
  c.sqrt_bc2 = static_cast<float>(sqrt_bc2);
  c.eps = static_cast<float>(o.eps);
  c.neg_step_size = static_cast<float>(-step_size);
  // The fused one-pass kernel (adam_kernel.h) on the CPU: fed a contiguous fp32 param and its fp32 or bf16
  // gradient directly, or a bf16 or strided param's pieces through fp32 scratch; the ATen chain elsewhere.
  const OptParam& param = params()[selected()[k]];
  const at::Tensor& value = param.value;
  const at::Tensor g_all = grad.contiguous();
  if (value.device().is_cpu() && value.scalar_type() == at::kFloat && value.is_contiguous() && exp_avg_all.scalar_type() == at::kFloat &&
      (g_all.scalar_type() == at::kFloat || g_all.scalar_type() == at::kBFloat16)) {
    float* p = value.data_ptr<float>();
    float* m = exp_avg_all.data_ptr<float>();
    float* v = exp_avg_sq_all.data_ptr<float>();
    const at::Tensor& copy = param.compute_copy;
    uint16_t* cp = copy.defined() && copy.scalar_type() == at::kBFloat16 ? reinterpret_cast<uint16_t*>(copy.data_ptr<at::BFloat16>()) : nullptr;
    auto walk = [&](const auto* g) {  // float or bf16 bits
      for_each_piece(value.numel(), [&](int64_t off, int64_t n) { adam_update(p + off, g + off, m + off, v + off, n, c, cp ? cp + off : nullptr); });
    };
    if (g_all.scalar_type() == at::kFloat) walk(g_all.data_ptr<float>());
    else walk(reinterpret_cast<const uint16_t*>(g_all.data_ptr<at::BFloat16>()));
    // Written behind ATen's back: a compute copy not rewritten with it must be made again (optimizer.h).
    if (!cp) value.unsafeGetTensorImpl()->bump_version();
    return;
  }
  for_each_chunk(k, grad, [&](const at::Tensor& p, const at::Tensor& g_in, int64_t off, int64_t n) {
    at::Tensor exp_avg = exp_avg_all.narrow(0, off, n);        // [n]
    at::Tensor exp_avg_sq = exp_avg_sq_all.narrow(0, off, n);  // [n]
    if (p.device().is_cpu() && exp_avg.scalar_type() == at::kFloat) {  // a bf16 or strided param's fp32 piece
      const at::Tensor g = g_in.scalar_type() == at::kFloat ? g_in : effective_grad(g_in, 1.0, p, 0.0);  // [n] fp32
      adam_update(p.data_ptr<float>(), g.data_ptr<float>(), exp_avg.data_ptr<float>(), exp_avg_sq.data_ptr<float>(), n, c, nullptr);
      return;
    }
    if (decay != 1.0) p.mul_(decay);
    const at::Tensor g = effective_grad(g_in, grad_scale, p, l2);  // [n] fp32
    exp_avg.lerp_(g, 1 - o.beta1);
    exp_avg_sq.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
    at::Tensor denom = scratch(kScratchTmp, n);  // [n]: sqrt(v) / sqrt(bc2) + eps
    at::sqrt_out(denom, exp_avg_sq);
    denom.div_(sqrt_bc2).add_(o.eps);
    p.addcdiv_(exp_avg, denom, -step_size);
  });
}

}  // namespace fme
