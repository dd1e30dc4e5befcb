#include "pipelines/train/loss.h"

#include <ATen/ATen.h>
#include <ATen/core/Reduction.h>

#include "util/error.h"

namespace fme {

Objective parse_objective(const std::string& name) {
  if (name == "causal") return Objective::Causal;
  if (name == "mlm") return Objective::MaskedLM;
  throw ConfigError("--objective '" + name + "': expected auto, causal or mlm");
}

const char* objective_name(Objective o) { return o == Objective::Causal ? "causal" : "mlm"; }

LossSum cross_entropy_sum(const at::Tensor& logits, const at::Tensor& labels, Objective objective) {
  constexpr int64_t kIgnore = -100;
  at::Tensor x = logits, y = labels;  // [B,T,V], [B,T]
  if (objective == Objective::Causal) {
    const int64_t T = logits.size(1);
    x = logits.narrow(1, 0, T - 1);  // positions 0..T-2 predict
    y = labels.narrow(1, 1, T - 1);  // tokens 1..T-1
  }
  const int64_t V = x.size(-1);
  at::Tensor flat_y = y.reshape({-1});
  const int64_t tokens = flat_y.ne(kIgnore).sum().item<int64_t>();
  // In fp32, as HF's loss upcasts the logits.
  at::Tensor sum = at::cross_entropy_loss(x.reshape({-1, V}).to(at::kFloat), flat_y, {}, at::Reduction::Sum, kIgnore);
  return {sum, tokens};
}

}  // namespace fme
