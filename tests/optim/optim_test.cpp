// optax semantics of the schedule and of clip_by_global_norm (incl. sharded / replicated params),
// zero-page optimizer state, bf16 / non-contiguous params, and hyper-parameter validation.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/factory.h"
#include "optim/sgd.h"
#include "optim/sum_squares.h"
#include "fill/tensor_arena.h"
#include "util/error.h"

namespace fme {
namespace {

// ---- schedule --------------------------------------------------------------------------------------

// optax.warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps, end_value):
//   "Linear warmup followed by cosine decay."  decay_steps: "the total length of the schedule. Note that
//   this includes the warmup time, so the number of steps during which cosine annealing is applied is
//   decay_steps - warmup_steps."  It joins (join_schedules, boundary warmup_steps, the second schedule
//   sees count - warmup_steps):
//   linear_schedule:       I + (t - B) / T (E - I)   for B <= t < B + T, E after      (I=init, E=peak, T=W)
//   cosine_decay_schedule: alpha I + (1 - alpha) I [1/2 (1 + cos(pi t / T))]^p  for t <= T, alpha I after
//                          (I=peak, T=decay_steps - warmup_steps, alpha = end / peak, p = exponent = 1)
double closed_form(double init, double peak, int64_t W, int64_t D, double end, int64_t t) {
  if (t < W) return init + static_cast<double>(t) / W * (peak - init);
  const double T = static_cast<double>(D - W);
  const double alpha = end / peak;
  const double u = std::min(static_cast<double>(t - W), T);
  return alpha * peak + (1 - alpha) * peak * 0.5 * (1 + std::cos(M_PI * u / T));
}

TEST(Schedule, WarmupCosineMatchesOptaxClosedForm) {
  const Schedule s = warmup_cosine_decay_schedule(0.0, 5e-5, 10, 100);
  for (int64_t t : {0, 1, 5, 10, 11, 55, 100, 150}) {
    EXPECT_NEAR(s(t), closed_form(0.0, 5e-5, 10, 100, 0.0, t), 1e-18) << "count " << t;
  }
  // Landmarks: starts at init, peaks at W, halfway through the cosine is the midpoint, ends at end_value.
  EXPECT_EQ(s(0), 0.0);
  EXPECT_NEAR(s(1), 5e-6, 1e-18);
  EXPECT_NEAR(s(5), 2.5e-5, 1e-18);
  EXPECT_NEAR(s(10), 5e-5, 1e-18);
  EXPECT_NEAR(s(11), 5e-5 * 0.5 * (1 + std::cos(M_PI / 90)), 1e-18);
  EXPECT_NEAR(s(55), 2.5e-5, 1e-18);
  EXPECT_NEAR(s(100), 0.0, 1e-18);
  EXPECT_NEAR(s(150), 0.0, 1e-18);

  const Schedule e = warmup_cosine_decay_schedule(1e-6, 1e-3, 4, 20, 1e-5);
  for (int64_t t : {0, 2, 4, 5, 12, 20, 21, 1000}) {
    EXPECT_NEAR(e(t), closed_form(1e-6, 1e-3, 4, 20, 1e-5, t), 1e-15) << "count " << t;
  }
  EXPECT_NEAR(e(1000), 1e-5, 1e-15);
  // No warmup: the cosine starts at count 0.
  const Schedule z = warmup_cosine_decay_schedule(0.0, 1.0, 0, 10);
  EXPECT_DOUBLE_EQ(z(0), 1.0);
  EXPECT_NEAR(z(5), 0.5, 1e-15);
  EXPECT_DOUBLE_EQ(constant_schedule(3e-4)(12345), 3e-4);
}

TEST(Schedule, OptimizerUsesScheduleAtCount) {
  auto cfg = seed_train_config();
  auto opt = make_optimizer({{"w", at::ones({4})}}, cfg);
  const Schedule s = warmup_cosine_decay_schedule(0.0, 5e-5, 10, 100);
  EXPECT_DOUBLE_EQ(opt->current_lr(), s(0));
  opt->step({at::ones({4})});
  EXPECT_DOUBLE_EQ(opt->current_lr(), s(1));
  opt->set_step_count(55);
  EXPECT_DOUBLE_EQ(opt->current_lr(), s(55));
}

// ---- clip_by_global_norm --------------------------------------------------------------------------

std::vector<OptParam> clip_params(bool b_replicated) {
  return {{"a", at::zeros({3, 4})},
          {"b", at::zeros({5}), true, b_replicated},
          {"frozen", at::zeros({7}), false}};
}

std::vector<at::Tensor> grads_filled(double v) {
  return {at::full({3, 4}, v), at::full({5}, v), at::full({7}, 100.0)};  // frozen's grad must not count
}

TEST(Clip, BelowMaxLeavesGradsAlone) {
  auto params = clip_params(false);
  auto g = grads_filled(0.1);
  const double norm = clip_by_global_norm(params, g, ClipOptions{1.0, 1, {}});
  EXPECT_NEAR(norm, 0.1 * std::sqrt(17.0), 1e-6);
  EXPECT_TRUE(at::equal(g[0], at::full({3, 4}, 0.1)));
  EXPECT_TRUE(at::equal(g[1], at::full({5}, 0.1)));
  EXPECT_EQ(clip_scale(0.999, 1.0), 1.0);
}

TEST(Clip, AboveMaxScalesToMax) {
  auto params = clip_params(false);
  auto g = grads_filled(1.0);
  const double norm = clip_by_global_norm(params, g, ClipOptions{1.0, 1, {}});
  EXPECT_NEAR(norm, std::sqrt(17.0), 1e-6);
  EXPECT_NEAR(g[0][0][0].item<double>(), 1.0 / std::sqrt(17.0), 1e-7);
  EXPECT_NEAR(global_grad_norm(params, g, ClipOptions{1.0, 1, {}}), 1.0, 1e-6);
  EXPECT_TRUE(at::equal(g[2], at::full({7}, 100.0)));  // frozen untouched
  // optax: where(norm < max, g, g / norm * max) - at norm == max the factor is exactly 1 (torch's
  // clip_grad_norm_ would use max / (norm + 1e-6) < 1).
  EXPECT_EQ(clip_scale(1.0, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(clip_scale(4.0, 1.0), 0.25);
}

TEST(Clip, AllreduceOverTwoShards) {
  // A fake allreduce that doubles the local sum: 2 processes holding equal-norm shards.
  auto params = clip_params(false);
  auto g = grads_filled(1.0);
  ClipOptions o{1.0, 1, [](double local) { return 2 * local; }};
  const double norm = clip_by_global_norm(params, g, o);
  EXPECT_NEAR(norm, std::sqrt(34.0), 1e-6);
  EXPECT_NEAR(g[0][0][0].item<double>(), 1.0 / std::sqrt(34.0), 1e-7);
}

TEST(Clip, ReplicatedParamsCountedOnce) {
  // 2 processes: "a" is sharded (each holds a distinct [3,4] shard), "b" is replicated (both hold it).
  // Global sum of squares = 2 * 12 (two shards of a) + 5 (b once) = 29.
  auto params = clip_params(true);
  auto g = grads_filled(1.0);
  ClipOptions o{1.0, 2, [](double local) { return 2 * local; }};
  EXPECT_NEAR(local_sum_of_squares(params, g, 2), 12 + 2.5, 1e-9);
  const double norm = clip_by_global_norm(params, g, o);
  EXPECT_NEAR(norm, std::sqrt(29.0), 1e-6);
  EXPECT_NEAR(g[1][0].item<double>(), 1.0 / std::sqrt(29.0), 1e-7);
}

TEST(Clip, ShardsHeldByDataParallelCopiesCountedOnce) {
  // Mesh dp=2,tp=2 (4 processes): "a" is sharded over tp, so each of its 2 shards is held by the 2 dp ranks;
  // "b" is replicated on all 4. Global sum of squares = 2 * 12 (a's two shards, once each) + 5 (b once) = 29.
  auto params = clip_params(true);
  params[0].shard_copies = 2;
  auto g = grads_filled(1.0);
  EXPECT_NEAR(local_sum_of_squares(params, g, 4), 12.0 / 2 + 5.0 / 4, 1e-9);
  ClipOptions o{1.0, 4, [](double local) { return 4 * local; }};
  EXPECT_NEAR(clip_by_global_norm(params, g, o), std::sqrt(29.0), 1e-6);
}

TEST(Clip, ChainDoesNotModifyCallerGrads) {
  std::vector<OptParam> params = {{"w", at::zeros({4})}};
  SgdOptions so;
  so.lr = 1.0;
  Chain chain(ClipOptions{1.0, 1, {}}, std::make_unique<Sgd>(params, so));
  const at::Tensor g = at::full({4}, 1.0);  // norm 2 -> scale 0.5
  chain.step({g});
  EXPECT_TRUE(at::equal(g, at::full({4}, 1.0)));
  EXPECT_DOUBLE_EQ(chain.last_global_norm(), 2.0);
  EXPECT_DOUBLE_EQ(chain.last_clip_scale(), 0.5);
  EXPECT_TRUE(at::allclose(params[0].value, at::full({4}, -0.5)));
}

// ---- zero pages ------------------------------------------------------------------------------------

TEST(TensorArena, ArenaTensorsAreZeroAlignedAndWritable) {
  TensorArena arena({{{1000, 3}, at::kFloat}, {{0, 5}, at::kFloat}, {{7}, at::kBFloat16}});
  const at::Tensor& t = arena.tensor(0);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{1000, 3}));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 4096, 0u);
  EXPECT_EQ(arena.resident_bytes(), 0);
  EXPECT_EQ(t.abs().sum().item<double>(), 0.0);
  at::Tensor w = t;
  w.fill_(2.0);  // writable
  EXPECT_EQ(t.sum().item<double>(), 6000.0);
  EXPECT_GT(arena.resident_bytes(), 0);
  EXPECT_EQ(arena.tensor(1).numel(), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(arena.tensor(2).data_ptr()) % TensorArena::kAlignment, 0u);
  EXPECT_EQ(arena.payload_bytes(), 12000 + 14);
  // The mapping outlives the arena while a tensor views it.
  at::Tensor keep = arena.tensor(2);
  arena = TensorArena();
  EXPECT_EQ(keep.abs().sum().item<float>(), 0.0f);
}

TEST(TensorArena, OptimizerStateIsOneUntouchedArena) {
  std::vector<OptParam> params = {{"a", at::randn({3, 4})},
                                  {"b", at::randn({5})},
                                  {"frozen", at::randn({2}), false},
                                  {"ids", at::zeros({3}, at::kLong)},  // not floating: not selected
                                  {"big", at::randn({1024, 1024})}};
  AdamOptions o;
  o.decoupled_weight_decay = true;
  Adam opt(params, o);
  const TensorArena& arena = opt.state_arena();
  EXPECT_EQ(arena.mapping_count(), 1);
  EXPECT_TRUE(opt.state_untouched());
  EXPECT_EQ(arena.resident_bytes(), 0);  // nothing written: no page faulted in yet

  const auto named = opt.named_state();
  ASSERT_EQ(named.size(), 3u * 3u);  // step, exp_avg, exp_avg_sq for a, b, big
  int64_t sum = 0;
  const char* lo = static_cast<const char*>(arena.base());
  const char* hi = lo + arena.mapped_bytes();
  for (const auto& [name, t] : named) {
    sum += t.numel() * static_cast<int64_t>(t.element_size());
    const char* p = static_cast<const char*>(t.data_ptr());
    EXPECT_TRUE(p >= lo && p + t.numel() * t.element_size() <= hi) << name << " outside the arena";
    EXPECT_EQ(t.abs().sum().item<double>(), 0.0) << name;
    if (name.find(".exp_avg") != std::string::npos) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % TensorArena::kAlignment, 0u) << name;
      EXPECT_EQ(t.scalar_type(), at::kFloat);
    }
  }
  EXPECT_EQ(opt.state_bytes(), sum);
  EXPECT_EQ(sum, 3 * 8 + 2 * 4 * (12 + 5 + 1024 * 1024));
  EXPECT_EQ(named[1].first, "a.exp_avg");
  EXPECT_EQ(named[1].second.sizes(), params[0].value.sizes());

  std::vector<at::Tensor> grads(params.size());
  grads[0] = at::ones({3, 4});
  opt.step(grads);
  EXPECT_FALSE(opt.state_untouched());
  EXPECT_GT(arena.resident_bytes(), 0);
}

// ---- dtypes, layouts, shapes ---------------------------------------------------------------------

TEST(Optimizer, Bf16ParamUsesFp32StateAndMatchesFp32MathRounded) {
  at::manual_seed(3);
  const at::Tensor init = at::randn({300, 500}).to(at::kBFloat16);
  const at::Tensor grad = at::randn({300, 500}).to(at::kBFloat16);
  std::vector<OptParam> bf = {{"w", init.clone()}};
  std::vector<OptParam> f32 = {{"w", init.to(at::kFloat)}};
  AdamOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  o.decoupled_weight_decay = true;
  Adam a(bf, o), b(f32, o);
  a.step({grad});
  b.step({grad.to(at::kFloat)});
  for (const auto& [n, t] : a.named_state()) {
    if (n != "w.step") {
      EXPECT_EQ(t.scalar_type(), at::kFloat) << n;
    }
  }
  EXPECT_EQ(bf[0].value.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(bf[0].value, f32[0].value.to(at::kBFloat16)));
}

// Mixed precision: a bf16 gradient fed as it is gives the bits its exact fp32 widening gives, and the step
// writes the param's compute copy as p.to(bf16) would (instead of bumping the version, which it does when
// there is no copy, so that a cached copy is made again).
TEST(Optimizer, Bf16GradientAndComputeCopyChangeNoBit) {
  at::manual_seed(5);
  const at::Tensor init = at::randn({333, 517});  // not a whole number of 64 Ki pieces
  const at::Tensor grad = at::randn({333, 517}).to(at::kBFloat16);
  for (bool decoupled : {true, false}) {
    std::vector<OptParam> mixed = {{"w", init.clone()}}, plain = {{"w", init.clone()}};
    AdamOptions o;
    o.lr = 1e-2;
    o.weight_decay = 0.1;
    o.decoupled_weight_decay = decoupled;
    Adam a(mixed, o), b(plain, o);
    const at::Tensor copy = at::zeros({333, 517}, at::kBFloat16);
    a.set_compute_copies({copy});
    const int64_t version = plain[0].value._version(), copy_version = mixed[0].value._version();
    for (int s = 0; s < 3; ++s) {
      a.step({grad});
      b.step({grad.to(at::kFloat)});
      EXPECT_TRUE(at::equal(mixed[0].value, plain[0].value)) << "step " << s << " decoupled " << decoupled;
      EXPECT_TRUE(at::equal(copy, mixed[0].value.to(at::kBFloat16))) << "step " << s;
    }
    EXPECT_GT(plain[0].value._version(), version);          // no copy: written, so the version moved
    EXPECT_EQ(mixed[0].value._version(), copy_version);     // the copy kept in step: nothing to remake
    Adam c(std::vector<OptParam>{{"w", init.clone()}}, o);
    EXPECT_THROW(c.set_compute_copies({at::zeros({3}, at::kBFloat16)}), ShapeError);
  }
}

// ||g||^2 in double: the exact squares of the widened values, whatever the dtype, thread count or layout.
TEST(SumOfSquares, DoubleAccurateForFp32AndBf16) {
  at::manual_seed(6);
  const at::Tensor g = at::randn({1000, 301}) * 3;  // 301000: pieces and a ragged tail
  const double reference = g.to(at::kDouble).pow(2).sum().item<double>();
  EXPECT_NEAR(sum_of_squares(g), reference, 1e-12 * reference);
  const at::Tensor h = g.to(at::kBFloat16);
  const double ref16 = h.to(at::kDouble).pow(2).sum().item<double>();
  EXPECT_NEAR(sum_of_squares(h), ref16, 1e-12 * ref16);
  EXPECT_NE(sum_of_squares(h), sum_of_squares(g));  // the bf16 values, not rounded fp32 ones
  EXPECT_NEAR(sum_of_squares(g.t()), reference, 1e-12 * reference);  // strided: through ATen
  const int threads = at::get_num_threads();
  const double with_all = sum_of_squares(g);
  at::set_num_threads(1);
  const double with_one = sum_of_squares(g);
  at::set_num_threads(threads);
  EXPECT_EQ(with_all, with_one);
  EXPECT_EQ(sum_of_squares(at::zeros({0})), 0.0);
  EXPECT_TRUE(std::isinf(sum_of_squares(at::full({5}, INFINITY))));
}

TEST(Optimizer, NonContiguousShardMatchesContiguous) {
  at::manual_seed(4);
  const at::Tensor base = at::randn({400, 300});
  const at::Tensor grad = at::randn({300, 400});
  std::vector<OptParam> strided = {{"w", base.clone().t()}};  // [300,400] view, not contiguous
  std::vector<OptParam> dense = {{"w", base.t().contiguous()}};
  ASSERT_FALSE(strided[0].value.is_contiguous());
  SgdOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  o.nesterov = true;
  Sgd a(strided, o), b(dense, o);
  for (int s = 0; s < 2; ++s) {
    a.step({grad});
    b.step({grad});
  }
  EXPECT_TRUE(at::equal(strided[0].value, dense[0].value));
}

TEST(Optimizer, UpdatesLeavesThatRequireGrad) {
  // A training loop's params are autograd leaves; the in-place update must work on them and keep them so.
  std::vector<OptParam> params = {{"w", at::ones({4}).requires_grad_(true)}};
  SgdOptions o;
  o.lr = 0.5;
  Sgd opt(params, o);
  opt.step({at::ones({4})});
  EXPECT_TRUE(params[0].value.requires_grad());
  EXPECT_TRUE(at::allclose(params[0].value.detach(), at::full({4}, 0.5)));
}

TEST(Optimizer, BadGradsAreShapeErrors) {
  std::vector<OptParam> params = {{"a", at::zeros({3, 4})}, {"b", at::zeros({5})}};
  Adam opt(params, AdamOptions{});
  EXPECT_THROW(opt.step({at::zeros({3, 4})}), ShapeError);
  try {
    opt.step({at::zeros({3, 4}), at::zeros({6})});
    FAIL();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(opt.state_untouched());
  EXPECT_EQ(opt.step_count(), 0);
  // An undefined grad skips the param: no update, no state change, but the step counts.
  opt.step({at::ones({3, 4}), at::Tensor()});
  EXPECT_TRUE(at::equal(params[1].value, at::zeros({5})));
  EXPECT_EQ(opt.named_state()[3].first, "b.step");
  EXPECT_EQ(opt.named_state()[3].second.item<int64_t>(), 0);
  EXPECT_EQ(opt.step_count(), 1);
}

// ---- factory validation ----------------------------------------------------------------------------

void expect_config_error(const OptimizerConfig& c, const std::string& needle, const std::string& value) {
  try {
    make_optimizer({{"w", at::zeros({2})}}, c);
    ADD_FAILURE() << "no ConfigError for " << needle;
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_NE(msg.find(value), std::string::npos) << msg;
  }
}

TEST(Factory, BadHyperParametersNameThemselves) {
  OptimizerConfig c;
  c.name = "adamx";
  expect_config_error(c, "adamx", "adam, adamw, sgd");

  auto with = [](auto edit) {
    OptimizerConfig c;
    edit(c);
    return c;
  };
  expect_config_error(with([](auto& c) { c.lr = 0; }), "'lr'", "> 0");
  expect_config_error(with([](auto& c) { c.lr = -1e-3; }), "'lr'", "-0.001");
  expect_config_error(with([](auto& c) { c.beta1 = 1.0; }), "'beta1'", "[0, 1)");
  expect_config_error(with([](auto& c) { c.beta2 = -0.1; }), "'beta2'", "-0.1");
  expect_config_error(with([](auto& c) { c.eps = 0; }), "'eps'", "> 0");
  expect_config_error(with([](auto& c) { c.weight_decay = -0.01; }), "'weight_decay'", ">= 0");
  expect_config_error(with([](auto& c) { c.name = "sgd"; c.momentum = 1.0; }), "'momentum'", "[0, 1)");
  expect_config_error(with([](auto& c) { c.name = "sgd"; c.nesterov = true; }), "'momentum'", "nesterov");
  expect_config_error(with([](auto& c) { c.clip_norm = 0.0; }), "'clip_norm'", "> 0");
  expect_config_error(with([](auto& c) { c.clip_norm = 1.0; c.replica_count = 0; }), "'replica_count'", ">= 1");
  expect_config_error(with([](auto& c) {
                        c.schedule.kind = "warmup_cosine";
                        c.schedule.warmup_steps = 10;
                        c.schedule.decay_steps = 10;
                      }),
                      "'schedule.decay_steps'", "warmup");
  expect_config_error(with([](auto& c) { c.schedule.kind = "cosine"; }), "cosine", "warmup_cosine");
  // Direct construction validates too.
  AdamOptions bad;
  bad.beta2 = 1.0;
  EXPECT_THROW(Adam({{"w", at::zeros({2})}}, bad), ConfigError);
}

TEST(Factory, BuildsWhatWasAsked) {
  auto seed = make_optimizer({{"w", at::zeros({2})}}, seed_train_config());
  EXPECT_NE(dynamic_cast<Chain*>(seed.get()), nullptr);
  auto bench = make_optimizer({{"w", at::zeros({2})}}, seed_benchmark_config());
  auto* adam = dynamic_cast<Adam*>(bench.get());
  ASSERT_NE(adam, nullptr);
  EXPECT_TRUE(adam->options().decoupled_weight_decay);
  EXPECT_DOUBLE_EQ(adam->options().weight_decay, 1e-4);
  EXPECT_DOUBLE_EQ(bench->current_lr(), 1e-4);
  OptimizerConfig c;
  c.name = "adamw";
  auto d = make_optimizer({{"w", at::zeros({2})}}, c);
  EXPECT_DOUBLE_EQ(dynamic_cast<Adam*>(d.get())->options().weight_decay, 0.01);  // torch's AdamW default
  c.name = "sgd";
  c.momentum = 0.9;
  auto s = make_optimizer({{"w", at::zeros({2})}}, c);
  EXPECT_NE(dynamic_cast<Sgd*>(s.get()), nullptr);
  EXPECT_EQ(s->state_bytes(), 2 * 4);
}

}  // namespace
}  // namespace fme
