#include "pipelines/train/loss.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/Reduction.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "models/bf16_data.h"
#include "pipelines/train/cross_entropy_kernel.h"
#include "util/bf16_bits.h"
#include "util/error.h"

namespace fme {
namespace {

constexpr int64_t kIgnore = -100;


// bf16 logits on the CPU: the sum over counted rows of logsumexp(row) - row[target], in fp32 registers a row
// at a time (cross_entropy_kernel.h), the rows' losses summed in double. Backward writes the bf16 gradient
// in one pass from the saved logits and per-row logsumexp.
struct FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
  // logits [R,V] bf16 contiguous, targets [R] int64 in [0, V) or kIgnore.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets) {
    const int64_t R = logits.size(0), V = logits.size(1);
    at::Tensor lse = at::empty({R}, at::kFloat);
    const uint16_t* x = bf16_data(logits);
    const int64_t* t = targets.data_ptr<int64_t>();
    float* l = lse.data_ptr<float>();
    std::vector<double> loss(static_cast<size_t>(R), 0.0);
    at::parallel_for(0, R, 1, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        if (t[r] == kIgnore) continue;
        l[r] = row_logsumexp(x + r * V, V);
        loss[static_cast<size_t>(r)] = double(l[r]) - double(bf16_to_float(x[r * V + t[r]]));
      }
    });
    double sum = 0;
    for (double v : loss) sum += v;  // in row order: the same bits for any thread count
    ctx->save_for_backward({logits, targets, lse});
    return at::scalar_tensor(sum, at::kFloat);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &logits = saved[0], &targets = saved[1], &lse = saved[2];
    const int64_t R = logits.size(0), V = logits.size(1);
    const float scale = grads[0].item<float>();
    at::Tensor dx = at::empty_like(logits);
    const uint16_t* x = bf16_data(logits);
    auto* d = bf16_data(dx);
    const int64_t* t = targets.data_ptr<int64_t>();
    const float* l = lse.data_ptr<float>();
    at::parallel_for(0, R, 1, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) row_cross_entropy_grad(x + r * V, V, l[r], t[r] == kIgnore ? -1 : t[r], scale, d + r * V);
    });
    return {dx, at::Tensor()};
  }
};

}  // namespace

Objective parse_objective(const std::string& name) {
  if (name == "causal") return Objective::Causal;
  if (name == "mlm") return Objective::MaskedLM;
  throw ConfigError("--objective '" + name + "': expected auto, causal or mlm");
}

const char* objective_name(Objective o) { return o == Objective::Causal ? "causal" : "mlm"; }

LossSum cross_entropy_sum(const at::Tensor& logits, const at::Tensor& labels, Objective objective) {
  at::Tensor x = logits, y = labels;  // [B,T,V], [B,T]
  if (objective == Objective::Causal) {
    const int64_t T = logits.size(1);
    x = logits.narrow(1, 0, T - 1);  // positions 0..T-2 predict
    y = labels.narrow(1, 1, T - 1);  // tokens 1..T-1
  }
  const int64_t V = x.size(-1);
  at::Tensor flat_y = y.reshape({-1});
  const int64_t tokens = flat_y.ne(kIgnore).sum().item<int64_t>();
  if (logits.device().is_cpu() && logits.scalar_type() == at::kBFloat16) {
    // Every position a row, the causal shift in the targets (the last position predicts nothing): no slice
    // of the logits, whose backward would be a zeroed full-size gradient and a copy.
    at::Tensor targets = labels.to(at::kLong).contiguous();  // [B,T]
    if (objective == Objective::Causal) {
      targets = at::full_like(targets, kIgnore);
      targets.narrow(1, 0, labels.size(1) - 1).copy_(labels.narrow(1, 1, labels.size(1) - 1));
    }
    const at::Tensor counted = targets.ne(kIgnore);
    if (targets.lt(0).logical_and(counted).any().item<bool>() || targets.ge(V).any().item<bool>())
      throw ShapeError("labels: a value is outside [0, " + std::to_string(V) + ") and is not -100");
    at::Tensor sum = FusedCrossEntropy::apply(logits.reshape({-1, V}).contiguous(), targets.view({-1}));
    return {sum, tokens};
  }
  // In fp32, as HF's loss upcasts the logits.
  at::Tensor sum = at::cross_entropy_loss(x.reshape({-1, V}).to(at::kFloat), flat_y, {}, at::Reduction::Sum, kIgnore);
  return {sum, tokens};
}

}  // namespace fme
