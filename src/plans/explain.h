// `fme prepare --explain`: the resolved PlanTable as an aligned text table (a dry run a person reads
// before spending GPU time) and as JSON (the same content, for scripts and tests).
#pragma once
#include <string>

#include "plans/resolve.h"
#include "util/json.h"

namespace fme::plans {

struct ExplainOptions {
  bool only_transformed = false;  // list only modules some plan matched (large models have thousands)
};

// Columns: MODULE, TYPE, RULE ("<plan>:<line> <pattern> -> <transform>", one line per matching plan,
// "-" if none), PARAM (local name; "(added)" for LoRA parameters), SPEC (JAX style), GLOBAL, LOCAL (per
// rank; splits are even so every rank has the same), DTYPE, TRAINABLE. A module takes as many lines as
// it has params or matches. Ends with a summary line and one "warning: ..." line per unmatched pattern.
std::string explain_text(const PlanTable& table, const ExplainOptions& options = {});

// {"mesh": [{"name", "size"}], "plans": [names],
//  "modules": [{"path", "type", "matches": [{"plan", "line", "pattern", "transform"}],
//               "params": [{"name", "spec": ["tp", null], "global_shape", "local_shape", "dtype",
//                           "trainable", "added_by_lora"}]}],
//  "unmatched": [messages]}
// `matches` lists only the plans that matched; the transform is its canonical text ("lora(r=8, alpha=16)").
Json explain_json(const PlanTable& table, const ExplainOptions& options = {});

}  // namespace fme::plans
