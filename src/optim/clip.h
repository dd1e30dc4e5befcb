// clip_by_global_norm as optax (the seed's), over a possibly tensor-parallel-sharded model, and Chain:
// clip -> optimizer as one Optimizer object.
//
// optax:  g_norm = sqrt(sum_i ||g_i||^2);  g_i <- where(g_norm < max_norm, g_i, g_i / g_norm * max_norm)
// i.e. scale = 1 if g_norm < max_norm else max_norm / g_norm  (no epsilon). We multiply by that scale
// (max_norm / g_norm computed in double), which differs from optax's (g / g_norm) * max_norm by at most an
// ulp. torch.nn.utils.clip_grad_norm_ instead scales by min(1, max_norm / (g_norm + 1e-6)): it clips
// slightly even at g_norm == max_norm and leaves norms up to ~max_norm + 1e-6 unclipped; we follow optax.
//
// Sharded models: the norm must cover ALL shards on all processes, so the local sum of squares goes
// through `allreduce_sum` (identity by default = one process). A param with replicated_over_mesh = true
// is held whole by each of the replica_count processes the allreduce spans; its local ||g||^2 is divided
// by replica_count so the allreduce counts it once (rank-agnostic; assumes its gradient is already
// identical across the replicas, as after a data/tensor-parallel gradient allreduce). Sharded params
// (replicated_over_mesh = false) contribute their local shard's ||g||^2 divided by shard_copies, the
// processes holding that same shard (1 unless the mesh has axes the param is not sharded over).
// Only gradients of selected params (trainable, floating) count, as optax's tree holds only those.
#pragma once
#include <functional>
#include <memory>

#include "optim/optimizer.h"

namespace fme {

struct ClipOptions {
  double max_norm = 1.0;      // > 0
  int64_t replica_count = 1;  // >= 1: processes holding each replicated_over_mesh param
  std::function<double(double)> allreduce_sum;  // sum over processes; empty = identity
};

// Throws ConfigError naming the first bad field.
void validate(const ClipOptions& o);

// This process's contribution: sum over selected params with a defined grad of ||g||^2 (replicated ones
// divided by replica_count), accumulated in double.
double local_sum_of_squares(const std::vector<OptParam>& params, const std::vector<at::Tensor>& grads,
                            int64_t replica_count = 1);
// sqrt(allreduce_sum(local_sum_of_squares)).
double global_grad_norm(const std::vector<OptParam>& params, const std::vector<at::Tensor>& grads,
                        const ClipOptions& o);
// optax's factor: 1 when global_norm < max_norm, else max_norm / global_norm.
double clip_scale(double global_norm, double max_norm);
// Scales the selected params' grads in place; returns the global norm before clipping.
double clip_by_global_norm(const std::vector<OptParam>& params, std::vector<at::Tensor>& grads,
                           const ClipOptions& o);

// clip_by_global_norm(max_norm) followed by `inner`, as optax.chain(clip_by_global_norm(..), adamw(..)).
// The clip factor is handed to the inner optimizer (step_scaled), so the caller's grads are not modified.
class Chain : public Optimizer {
 public:
  Chain(ClipOptions clip, std::unique_ptr<ParamOptimizer> inner);

  void step(const std::vector<at::Tensor>& grads) override;
  int64_t step_count() const override { return inner_->step_count(); }
  void set_step_count(int64_t count) override { inner_->set_step_count(count); }
  void set_schedule(Schedule schedule) override { inner_->set_schedule(std::move(schedule)); }
  double current_lr() const override { return inner_->current_lr(); }
  int64_t state_bytes() const override { return inner_->state_bytes(); }
  bool state_untouched() const override { return inner_->state_untouched(); }
  std::vector<std::pair<std::string, at::Tensor>> named_state() const override {
    return inner_->named_state();
  }
  void set_compute_copies(const std::vector<at::Tensor>& copies) override { inner_->set_compute_copies(copies); }

  ParamOptimizer& inner() { return *inner_; }
  const ParamOptimizer& inner() const { return *inner_; }
  const ClipOptions& clip_options() const { return clip_; }
  // Of the last step (NaN before the first): the global norm before clipping and the factor applied.
  double last_global_norm() const { return last_norm_; }
  double last_clip_scale() const { return last_scale_; }

 private:
  ClipOptions clip_;
  std::unique_ptr<ParamOptimizer> inner_;
  double last_norm_;
  double last_scale_;
};

}  // namespace fme
