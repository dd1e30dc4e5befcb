// Learning-rate schedules with optax's semantics: lr = schedule(count), where count is the number of
// updates already applied, so the FIRST update uses schedule(0).
//
// Note torch differs: torch.optim.lr_scheduler objects are stepped after optimizer.step() and some
// (CosineAnnealingLR, LinearLR) use recursive "chainable" forms; LinearLR(start_factor=1e-10) never starts
// at exactly 0. Values here follow optax's closed forms, computed in double (optax evaluates in float32,
// so the two agree to ~1e-7 relative, not bit for bit).
#pragma once
#include <cstdint>
#include <functional>

namespace fme {

// lr for the update with this 0-based count.
using Schedule = std::function<double(int64_t count)>;

// optax.constant_schedule(value).
Schedule constant_schedule(double value);

// optax.warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps, end_value, exponent):
//   count < W:        init + (peak - init) * count / W             (optax.linear_schedule; written there
//                                                                   as (init - peak)(1 - count/W) + peak)
//   count >= W:       t = min(count - W, D - W)
//                     peak * ((1 - a) * (0.5 * (1 + cos(pi * t / (D - W))))^exponent + a),
//                     a = end / peak (a = 0 when peak == 0)      (optax.cosine_decay_schedule, alpha = a)
// i.e. decay_steps D is the TOTAL length including warmup; the value at count >= D stays end_value.
// Throws ConfigError unless warmup_steps >= 0 and decay_steps > warmup_steps (optax raises for a
// non-positive cosine length). Negative counts are treated as 0.
Schedule warmup_cosine_decay_schedule(double init_value, double peak_value, int64_t warmup_steps,
                                      int64_t decay_steps, double end_value = 0.0, double exponent = 1.0);

}  // namespace fme
