// Global-norm gradient clipping (optax semantics, shard-aware) and the clip -> optimizer Chain.
#include "optim/clip.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "optim/sum_squares.h"
#include "util/error.h"

namespace fme {

void validate(const ClipOptions& o) {
  require_hyper(o.max_norm > 0, "clip_norm", o.max_norm, "> 0");
  require_hyper(o.replica_count >= 1, "replica_count", static_cast<double>(o.replica_count), ">= 1");
}

double local_sum_of_squares(const std::vector<OptParam>& params, const std::vector<at::Tensor>& grads,
                            int64_t replica_count) {
  if (grads.size() != params.size()) {
    throw ShapeError("clip_by_global_norm: got " + std::to_string(grads.size()) + " gradients for " +
                     std::to_string(params.size()) + " parameters");
  }
  c10::InferenceMode guard;
  double total = 0.0;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!ParamOptimizer::is_selected(params[i]) || !grads[i].defined()) continue;
    const double s = sum_of_squares(grads[i]);
    total += s / static_cast<double>(params[i].replicated_over_mesh ? replica_count : std::max<int64_t>(params[i].shard_copies, 1));
  }
  return total;
}

double global_grad_norm(const std::vector<OptParam>& params, const std::vector<at::Tensor>& grads,
                        const ClipOptions& o) {
  double s = local_sum_of_squares(params, grads, o.replica_count);
  if (o.allreduce_sum) s = o.allreduce_sum(s);
  return std::sqrt(s);
}

double clip_scale(double global_norm, double max_norm) {
  // Written as optax's where(g_norm < max_norm, g, ...): a NaN norm falls to the scaling branch (NaN).
  return global_norm < max_norm ? 1.0 : max_norm / global_norm;
}

double clip_by_global_norm(const std::vector<OptParam>& params, std::vector<at::Tensor>& grads,
                           const ClipOptions& o) {
  validate(o);
  const double norm = global_grad_norm(params, grads, o);
  const double scale = clip_scale(norm, o.max_norm);
  if (scale != 1.0) {
    c10::InferenceMode guard;
    for (size_t i = 0; i < params.size(); ++i) {
      if (ParamOptimizer::is_selected(params[i]) && grads[i].defined()) grads[i].mul_(scale);
    }
  }
  return norm;
}

namespace {
ClipOptions validated(ClipOptions o) {
  validate(o);
  return o;
}
}  // namespace

Chain::Chain(ClipOptions clip, std::unique_ptr<ParamOptimizer> inner)
    : clip_(validated(std::move(clip))),
      inner_(std::move(inner)),
      last_norm_(std::numeric_limits<double>::quiet_NaN()),
      last_scale_(std::numeric_limits<double>::quiet_NaN()) {
  if (!inner_) throw ConfigError("Chain: no optimizer to apply after the clip");
}

void Chain::step(const std::vector<at::Tensor>& grads) {
  // Every process reaches the allreduce once per step, even with no local grads (it is a collective).
  last_norm_ = global_grad_norm(inner_->params(), grads, clip_);
  last_scale_ = clip_scale(last_norm_, clip_.max_norm);
  inner_->step_scaled(grads, last_scale_);
}

}  // namespace fme
