// Adam and AdamW with torch.optim's semantics (the reference the tests compare against):
//   step t of a param (t counts that param's updates, torch's state['step'], from 1):
//   Adam:  g <- g + wd * p                        (L2 decay folded into the gradient)
//   AdamW: p <- p * (1 - lr * wd)                 (decoupled decay, before the Adam update)
//   m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)     (eps added after the sqrt)
// lr comes from the schedule at the optimizer's step_count() (0 for the first update, optax's count).
// AdamW equals optax.adamw (whose update is -lr * (adam(g) + wd * p)) when every param gets a gradient
// every step, which makes torch's per-param t equal optax's global count + 1.
#pragma once
#include "optim/optimizer.h"

namespace fme {

struct AdamOptions {
  double lr = 1e-3;            // constant lr, used when `schedule` is empty
  Schedule schedule;           // lr per step; overrides lr when set
  double beta1 = 0.9;          // [0, 1)
  double beta2 = 0.999;        // [0, 1)
  double eps = 1e-8;           // > 0
  double weight_decay = 0.0;   // >= 0; L2 for Adam, decoupled for AdamW
  bool decoupled_weight_decay = false;  // false = torch.optim.Adam, true = torch.optim.AdamW
};

// Throws ConfigError naming the first hyper-parameter out of range.
void validate(const AdamOptions& o);

// State per selected param: "step" int64 [], "exp_avg" fp32 [shard shape], "exp_avg_sq" fp32 [shard shape].
class Adam : public ParamOptimizer {
 public:
  Adam(std::vector<OptParam> params, AdamOptions options);
  const AdamOptions& options() const { return options_; }

 protected:
  void update(size_t k, const at::Tensor& grad, double grad_scale, double lr) override;

 private:
  AdamOptions options_;
};

}  // namespace fme
