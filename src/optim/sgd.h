// SGD with momentum (torch.optim.SGD, dampening 0), optional Nesterov and L2 weight decay:
//   g <- g + wd * p
//   buf <- momentum * buf + g          (torch's first step sets buf = g; buf starts at zero here, which
//                                       gives exactly g, so no "initialised" flag is needed)
//   d <- nesterov ? g + momentum * buf : buf        (d = g when momentum == 0: no state at all)
//   p <- p - lr * d
// lr comes from the schedule at step_count() (0 for the first update).
#pragma once
#include "optim/optimizer.h"

namespace fme {

struct SgdOptions {
  double lr = 1e-3;           // constant lr, used when `schedule` is empty
  Schedule schedule;          // lr per step; overrides lr when set
  double momentum = 0.0;      // [0, 1)
  bool nesterov = false;      // needs momentum > 0 (as torch)
  double weight_decay = 0.0;  // >= 0, L2
};

// Throws ConfigError naming the first hyper-parameter out of range.
void validate(const SgdOptions& o);

// State per selected param when momentum > 0: "momentum_buffer" fp32 [shard shape].
class Sgd : public ParamOptimizer {
 public:
  Sgd(std::vector<OptParam> params, SgdOptions options);
  const SgdOptions& options() const { return options_; }

 protected:
  void update(size_t k, const at::Tensor& grad, double grad_scale, double lr) override;

 private:
  SgdOptions options_;
};

}  // namespace fme
