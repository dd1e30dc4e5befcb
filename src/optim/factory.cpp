// Name + hyper-parameters -> validated optimizer object (see factory.h).
#include "optim/factory.h"

#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/sgd.h"
#include "util/error.h"

namespace fme {

const std::vector<std::string>& known_optimizers() {
  static const std::vector<std::string> names = {"adam", "adamw", "sgd"};
  return names;
}

Schedule make_schedule(const OptimizerConfig& c) {
  require_hyper(c.lr > 0, "lr", c.lr, "> 0");
  const ScheduleConfig& s = c.schedule;
  if (s.kind == "constant") return constant_schedule(c.lr);
  if (s.kind == "warmup_cosine") {
    require_hyper(s.init_value >= 0, "schedule.init_value", s.init_value, ">= 0");
    require_hyper(s.end_value >= 0, "schedule.end_value", s.end_value, ">= 0");
    require_hyper(s.warmup_steps >= 0, "schedule.warmup_steps", static_cast<double>(s.warmup_steps), ">= 0");
    require_hyper(s.decay_steps > s.warmup_steps, "schedule.decay_steps", static_cast<double>(s.decay_steps),
                  "> schedule.warmup_steps (" + std::to_string(s.warmup_steps) +
                      "; it is the total length including warmup)");
    return warmup_cosine_decay_schedule(s.init_value, c.lr, s.warmup_steps, s.decay_steps, s.end_value);
  }
  throw ConfigError("unknown lr schedule '" + s.kind + "': known schedules are constant, warmup_cosine");
}

std::unique_ptr<Optimizer> make_optimizer(std::vector<OptParam> params, const OptimizerConfig& c) {
  auto known = [] {
    std::string out;
    for (const auto& n : known_optimizers()) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  if (c.name != "adam" && c.name != "adamw" && c.name != "sgd") {
    throw ConfigError("unknown optimizer '" + c.name + "': known optimizers are " + known());
  }
  // Validate everything (schedule, clip) before allocating any state.
  Schedule schedule = make_schedule(c);
  std::optional<ClipOptions> clip;
  if (c.clip_norm) {
    clip = ClipOptions{*c.clip_norm, c.replica_count, c.allreduce_sum};
    validate(*clip);
  }
  std::unique_ptr<ParamOptimizer> opt;
  if (c.name == "sgd") {
    SgdOptions o;
    o.lr = c.lr;
    o.schedule = schedule;
    o.momentum = c.momentum;
    o.nesterov = c.nesterov;
    o.weight_decay = c.weight_decay.value_or(0.0);
    opt = std::make_unique<Sgd>(std::move(params), std::move(o));
  } else {
    AdamOptions o;
    o.lr = c.lr;
    o.schedule = schedule;
    o.beta1 = c.beta1;
    o.beta2 = c.beta2;
    o.eps = c.eps;
    o.decoupled_weight_decay = c.name == "adamw";
    o.weight_decay = c.weight_decay.value_or(o.decoupled_weight_decay ? 0.01 : 0.0);
    opt = std::make_unique<Adam>(std::move(params), std::move(o));
  }
  if (clip) return std::make_unique<Chain>(std::move(*clip), std::move(opt));
  return opt;
}

OptimizerConfig seed_train_config() {
  OptimizerConfig c;
  c.name = "adamw";
  c.lr = 5e-5;
  c.schedule.kind = "warmup_cosine";
  c.schedule.init_value = 0.0;
  c.schedule.warmup_steps = 10;
  c.schedule.decay_steps = 100;
  c.schedule.end_value = 0.0;
  c.weight_decay = 0.01;
  c.clip_norm = 1.0;
  return c;
}

OptimizerConfig seed_benchmark_config() {
  OptimizerConfig c;
  c.name = "adamw";
  c.lr = 1e-4;
  c.weight_decay = 1e-4;
  return c;
}

}  // namespace fme
