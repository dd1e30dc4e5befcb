// Parity of fme's Adam, AdamW and SGD(-momentum, nesterov) with PyTorch's own optimizers
// (torch::optim from libtorch's C++ frontend): same params, same gradients, 5 steps, max |diff| <= 1e-6
// on params and on every state tensor. Also the seed's clip -> adamw(warmup-cosine) chain against a
// hand-composed torch::optim::AdamW (lr set per step, grads clipped the optax way by the test).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>
#include <sstream>
#include <type_traits>

#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/factory.h"
#include "optim/sgd.h"

namespace fme {
namespace {

constexpr double kTol = 1e-6;
constexpr int kSteps = 5;

// [3,4] and [5] as in the brief, a frozen param, and a [300,500] one that spans 3 update chunks
// (ParamOptimizer::kChunk = 65536 elements) with a partial last chunk.
std::vector<OptParam> make_params() {
  torch::manual_seed(7);
  return {{"layer.w", torch::randn({3, 4})},
          {"layer.b", torch::randn({5})},
          {"frozen.w", torch::randn({2, 2}), /*trainable=*/false},
          {"big.w", torch::randn({300, 500}) * 0.1}};
}

// Deterministic gradients for step s, one per param (the frozen one gets one too; it must be ignored).
std::vector<at::Tensor> make_grads(const std::vector<OptParam>& params, int s, double scale = 1.0) {
  torch::manual_seed(1000 + s);
  std::vector<at::Tensor> g;
  for (const auto& p : params) g.push_back(torch::randn(p.value.sizes()) * scale);
  return g;
}

// torch's optimizers state map is keyed by the TensorImpl* (libtorch 2.x) or by its printed address
// (libtorch 1.13, c10::guts::to_string); this reads either.
template <class Map>
torch::optim::OptimizerParamState& state_of(Map& m, const at::Tensor& p) {
  using Key = typename std::decay_t<Map>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return *m.at(os.str());
  } else {
    return *m.at(p.unsafeGetTensorImpl());
  }
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Reference {
  std::vector<torch::Tensor> tensors;  // clones of the trainable params, requires_grad
  std::vector<size_t> index;           // into the fme param list
};

Reference make_reference(const std::vector<OptParam>& params) {
  Reference r;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].trainable) continue;
    r.tensors.push_back(params[i].value.clone().requires_grad_(true));
    r.index.push_back(i);
  }
  return r;
}

void set_grads(Reference& r, const std::vector<at::Tensor>& grads) {
  for (size_t j = 0; j < r.tensors.size(); ++j) r.tensors[j].mutable_grad() = grads[r.index[j]].clone();
}

// Runs both optimizers kSteps steps and compares params and the named state keys with torch's.
template <class TorchOpt, class StateT>
void run_parity(const char* label, ParamOptimizer& ours, TorchOpt& ref_opt, Reference& ref,
                const at::Tensor& frozen_before, const std::vector<std::string>& keys,
                std::function<at::Tensor(StateT&, const std::string&)> torch_state) {
  double worst_param = 0, worst_state = 0;
  for (int s = 0; s < kSteps; ++s) {
    const auto grads = make_grads(ours.params(), s);
    ours.step(grads);
    set_grads(ref, grads);
    ref_opt.step();
  }
  auto named = ours.named_state();
  for (size_t j = 0; j < ref.tensors.size(); ++j) {
    const OptParam& p = ours.params()[ref.index[j]];
    worst_param = std::max(worst_param, max_abs_diff(p.value, ref.tensors[j].detach()));
    for (const auto& key : keys) {
      auto& st = static_cast<StateT&>(state_of(ref_opt.state(), ref.tensors[j]));
      at::Tensor mine;
      for (auto& [n, t] : named) {
        if (n == p.name + "." + key) mine = t;
      }
      ASSERT_TRUE(mine.defined()) << p.name << "." << key;
      worst_state = std::max(worst_state, max_abs_diff(mine, torch_state(st, key)));
    }
  }
  std::cout << "[" << label << "] max|param diff| = " << worst_param << ", max|state diff| = " << worst_state
            << "\n";
  EXPECT_LE(worst_param, kTol) << label;
  EXPECT_LE(worst_state, kTol) << label;
  // The frozen param is untouched and has no state.
  EXPECT_TRUE(torch::equal(ours.params()[2].value, frozen_before));
  for (auto& [n, t] : named) EXPECT_EQ(n.rfind("frozen.", 0), std::string::npos) << n;
  EXPECT_EQ(ours.step_count(), kSteps);
}

TEST(TorchParity, AdamW) {
  auto params = make_params();
  const at::Tensor frozen = params[2].value.clone();
  Reference ref = make_reference(params);
  AdamOptions o;
  o.lr = 1e-2;
  o.beta1 = 0.9;
  o.beta2 = 0.99;
  o.eps = 1e-8;
  o.weight_decay = 0.1;
  o.decoupled_weight_decay = true;
  Adam ours(params, o);
  torch::optim::AdamW theirs(ref.tensors,
                             torch::optim::AdamWOptions(1e-2).betas({0.9, 0.99}).eps(1e-8).weight_decay(0.1));
  run_parity<torch::optim::AdamW, torch::optim::AdamWParamState>(
      "AdamW", ours, theirs, ref, frozen, {"exp_avg", "exp_avg_sq"},
      [](torch::optim::AdamWParamState& st, const std::string& k) {
        return k == "exp_avg" ? st.exp_avg() : st.exp_avg_sq();
      });
  // Per-param step counters match torch's state['step'].
  for (auto& [n, t] : ours.named_state()) {
    if (n.size() > 5 && n.substr(n.size() - 5) == ".step") {
      EXPECT_EQ(t.item<int64_t>(), kSteps) << n;
    }
  }
}

TEST(TorchParity, Adam) {
  auto params = make_params();
  const at::Tensor frozen = params[2].value.clone();
  Reference ref = make_reference(params);
  AdamOptions o;
  o.lr = 5e-3;
  o.beta1 = 0.8;
  o.beta2 = 0.999;
  o.eps = 1e-6;
  o.weight_decay = 0.05;  // L2: added to the gradient
  Adam ours(params, o);
  torch::optim::Adam theirs(ref.tensors,
                            torch::optim::AdamOptions(5e-3).betas({0.8, 0.999}).eps(1e-6).weight_decay(0.05));
  run_parity<torch::optim::Adam, torch::optim::AdamParamState>(
      "Adam", ours, theirs, ref, frozen, {"exp_avg", "exp_avg_sq"},
      [](torch::optim::AdamParamState& st, const std::string& k) {
        return k == "exp_avg" ? st.exp_avg() : st.exp_avg_sq();
      });
}

void sgd_case(const char* label, double momentum, bool nesterov, double wd) {
  auto params = make_params();
  const at::Tensor frozen = params[2].value.clone();
  Reference ref = make_reference(params);
  SgdOptions o;
  o.lr = 0.05;
  o.momentum = momentum;
  o.nesterov = nesterov;
  o.weight_decay = wd;
  Sgd ours(params, o);
  torch::optim::SGD theirs(
      ref.tensors, torch::optim::SGDOptions(0.05).momentum(momentum).nesterov(nesterov).weight_decay(wd));
  std::vector<std::string> keys;
  if (momentum > 0) keys.push_back("momentum_buffer");
  run_parity<torch::optim::SGD, torch::optim::SGDParamState>(
      label, ours, theirs, ref, frozen, keys,
      [](torch::optim::SGDParamState& st, const std::string&) { return st.momentum_buffer(); });
  if (momentum == 0) {
    EXPECT_EQ(ours.state_bytes(), 0);  // torch keeps no state either
  }
}

TEST(TorchParity, SgdMomentum) { sgd_case("SGD momentum", 0.9, false, 0.01); }
TEST(TorchParity, SgdNesterov) { sgd_case("SGD nesterov", 0.9, true, 0.01); }
TEST(TorchParity, SgdPlain) { sgd_case("SGD plain", 0.0, false, 0.0); }

// The seed: optax.chain(clip_by_global_norm(1.0), adamw(warmup_cosine_decay_schedule(0, 5e-5, 10, 100),
// weight_decay=0.01)), 3 steps, against torch::optim::AdamW with lr set per step from the schedule and
// grads clipped here the optax way: where(norm < max, g, g / norm * max).
TEST(TorchParity, SeedChainClipAdamWWarmupCosine) {
  auto params = make_params();
  const at::Tensor frozen = params[2].value.clone();
  Reference ref = make_reference(params);
  auto opt = make_optimizer(params, seed_train_config());
  auto* chain = dynamic_cast<Chain*>(opt.get());
  ASSERT_NE(chain, nullptr);
  const Schedule schedule = warmup_cosine_decay_schedule(0.0, 5e-5, 10, 100);
  torch::optim::AdamW theirs(ref.tensors, torch::optim::AdamWOptions(5e-5).weight_decay(0.01));

  double worst = 0, worst_state = 0;
  const double grad_scales[3] = {1.0, 1e-4, 1.0};  // clipped, not clipped (norm ~0.04), clipped
  for (int s = 0; s < 3; ++s) {
    const auto grads = make_grads(params, s, grad_scales[s]);
    EXPECT_DOUBLE_EQ(opt->current_lr(), schedule(s));
    opt->step(grads);

    double sumsq = 0;
    for (size_t j = 0; j < ref.tensors.size(); ++j) {
      sumsq += grads[ref.index[j]].to(at::kDouble).pow(2).sum().item<double>();
    }
    const double norm = std::sqrt(sumsq);
    EXPECT_NEAR(chain->last_global_norm(), norm, 1e-6 * norm);
    EXPECT_EQ(chain->last_clip_scale() < 1.0, norm >= 1.0);
    for (size_t j = 0; j < ref.tensors.size(); ++j) {
      at::Tensor g = grads[ref.index[j]];
      ref.tensors[j].mutable_grad() = norm < 1.0 ? g.clone() : g / norm * 1.0;
    }
    for (auto& group : theirs.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(schedule(s));
    }
    theirs.step();
  }
  for (size_t j = 0; j < ref.tensors.size(); ++j) {
    const OptParam& p = chain->inner().params()[ref.index[j]];
    worst = std::max(worst, max_abs_diff(p.value, ref.tensors[j].detach()));
    auto& st = static_cast<torch::optim::AdamWParamState&>(state_of(theirs.state(), ref.tensors[j]));
    for (auto& [n, t] : opt->named_state()) {
      if (n == p.name + ".exp_avg") worst_state = std::max(worst_state, max_abs_diff(t, st.exp_avg()));
      if (n == p.name + ".exp_avg_sq") worst_state = std::max(worst_state, max_abs_diff(t, st.exp_avg_sq()));
    }
  }
  std::cout << "[seed chain] max|param diff| = " << worst << ", max|state diff| = " << worst_state << "\n";
  EXPECT_LE(worst, kTol);
  EXPECT_LE(worst_state, kTol);
  EXPECT_TRUE(torch::equal(params[2].value, frozen));
  EXPECT_EQ(opt->step_count(), 3);
  EXPECT_DOUBLE_EQ(opt->current_lr(), schedule(3));
}

}  // namespace
}  // namespace fme
