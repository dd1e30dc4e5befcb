// SGD-momentum update as fused in-place ATen ops over cache-sized pieces (see sgd.h for the math).
#include "optim/sgd.h"

#include <ATen/ATen.h>

namespace fme {

void validate(const SgdOptions& o) {
  if (!o.schedule) require_hyper(o.lr > 0, "lr", o.lr, "> 0");
  require_hyper(o.momentum >= 0 && o.momentum < 1, "momentum", o.momentum, "in [0, 1)");
  require_hyper(!o.nesterov || o.momentum > 0, "momentum", o.momentum, "> 0 when nesterov is on");
  require_hyper(o.weight_decay >= 0, "weight_decay", o.weight_decay, ">= 0");
}

namespace {
SgdOptions validated(SgdOptions o) {
  validate(o);
  return o;
}
}  // namespace

Sgd::Sgd(std::vector<OptParam> params, SgdOptions options)
    : ParamOptimizer(std::move(params),
                     options.schedule ? options.schedule : constant_schedule(validated(options).lr)),
      options_(validated(std::move(options))) {
  if (options_.momentum > 0) {
    allocate_state({"momentum_buffer"}, /*with_step=*/false);
  } else {
    allocate_state({}, /*with_step=*/false);
  }
}

void Sgd::update(size_t k, const at::Tensor& grad, double grad_scale, double lr) {
  const SgdOptions& o = options_;
  const bool momentum = o.momentum > 0;
  for_each_chunk(k, grad, [&](const at::Tensor& p, const at::Tensor& g_in, int64_t off, int64_t n) {
    const at::Tensor g = effective_grad(g_in, grad_scale, p, o.weight_decay);  // [n] fp32
    at::Tensor d = g;
    if (momentum) {
      at::Tensor buf = flat_state(k, 0).narrow(0, off, n);  // [n]
      buf.mul_(o.momentum).add_(g);
      if (o.nesterov) {
        d = scratch(kScratchTmp, n);  // [n]: g + momentum * buf
        at::add_out(d, g, buf, o.momentum);
      } else {
        d = buf;
      }
    }
    p.add_(d, -lr);
  });
}

}  // namespace fme
