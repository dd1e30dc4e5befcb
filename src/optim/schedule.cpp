// optax-compatible learning-rate schedules (closed forms; see schedule.h for the formulas).
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace fme {

Schedule constant_schedule(double value) {
  return [value](int64_t) { return value; };
}

Schedule warmup_cosine_decay_schedule(double init_value, double peak_value, int64_t warmup_steps,
                                      int64_t decay_steps, double end_value, double exponent) {
  if (warmup_steps < 0) {
    throw ConfigError("schedule hyper-parameter 'warmup_steps' = " + std::to_string(warmup_steps) +
                      " is out of range: must be >= 0");
  }
  if (decay_steps <= warmup_steps) {
    throw ConfigError("schedule hyper-parameter 'decay_steps' = " + std::to_string(decay_steps) +
                      " is out of range: must be > warmup_steps (" + std::to_string(warmup_steps) +
                      "); decay_steps is the total length including warmup, as in optax");
  }
  const double alpha = peak_value == 0.0 ? 0.0 : end_value / peak_value;
  const double cosine_steps = static_cast<double>(decay_steps - warmup_steps);
  return [=](int64_t count_in) {
    const int64_t count = std::max<int64_t>(count_in, 0);
    if (count < warmup_steps) {
      // optax.linear_schedule (polynomial, power 1): (init - end) * (1 - c/T) + end, end = peak here.
      const double frac = 1.0 - static_cast<double>(count) / static_cast<double>(warmup_steps);
      return (init_value - peak_value) * frac + peak_value;
    }
    // optax.cosine_decay_schedule(peak, D - W, alpha) evaluated at count - W (join_schedules' offset).
    const double t = std::min(static_cast<double>(count - warmup_steps), cosine_steps);
    const double cosine = 0.5 * (1.0 + std::cos(M_PI * t / cosine_steps));
    return peak_value * ((1.0 - alpha) * std::pow(cosine, exponent) + alpha);
  };
}

}  // namespace fme
