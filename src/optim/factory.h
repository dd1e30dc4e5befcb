// Builds an optimizer (optionally clip -> optimizer, with an lr schedule) from a name and
// hyper-parameters, validating every value: the one place `fme prepare` and a training loop configure it.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace fme {

struct ScheduleConfig {
  std::string kind = "constant";  // "constant" (lr) | "warmup_cosine" (optax.warmup_cosine_decay_schedule)
  double init_value = 0.0;        // warmup_cosine: lr at count 0
  int64_t warmup_steps = 0;       // warmup_cosine: >= 0
  int64_t decay_steps = 0;        // warmup_cosine: TOTAL length incl. warmup, > warmup_steps
  double end_value = 0.0;         // warmup_cosine: lr from count decay_steps on
};

struct OptimizerConfig {
  std::string name = "adamw";  // see known_optimizers()
  double lr = 1e-3;            // > 0: the constant lr, or the peak of warmup_cosine
  ScheduleConfig schedule;
  double beta1 = 0.9, beta2 = 0.999;  // adam/adamw, [0, 1)
  double eps = 1e-8;                  // adam/adamw, > 0
  // >= 0. Unset = torch's default: adamw 0.01, adam 0, sgd 0.
  std::optional<double> weight_decay;
  double momentum = 0.0;  // sgd, [0, 1)
  bool nesterov = false;  // sgd, needs momentum > 0
  // Set = clip_by_global_norm(clip_norm) before the update (> 0); the fields below configure it.
  std::optional<double> clip_norm;
  int64_t replica_count = 1;                    // see clip.h
  std::function<double(double)> allreduce_sum;  // see clip.h; empty = identity
};

// "adam", "adamw", "sgd".
const std::vector<std::string>& known_optimizers();

// Throws ConfigError for an unknown name (listing the known ones) or a hyper-parameter out of range
// (naming it, its value and the valid range). The result is a Chain when clip_norm is set.
std::unique_ptr<Optimizer> make_optimizer(std::vector<OptParam> params, const OptimizerConfig& config);

// The schedule a config describes (validated).
Schedule make_schedule(const OptimizerConfig& config);

// The seed's training optimizer: optax.chain(clip_by_global_norm(1.0),
//   adamw(warmup_cosine_decay_schedule(0, 5e-5, 10, 100), weight_decay=0.01)).
OptimizerConfig seed_train_config();
// The seed benchmark's optimizer: optax.adamw(1e-4), whose weight_decay default is 1e-4 (not torch's 0.01).
OptimizerConfig seed_benchmark_config();

}  // namespace fme
