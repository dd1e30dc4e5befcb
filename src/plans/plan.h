// Plans: named, ordered lists of (glob pattern -> transform) rules read from a small line format (see
// docs/plans.md), plus the built-in tensor-parallel plans. This file only parses; matching, partition
// specs and validation against a model and a mesh live in resolve.h. Torch-free on purpose: `fme prepare
// --explain` must work without building a model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fme::plans {

enum class TransformKind { Colwise, Rowwise, Lora, Freeze, Unfreeze, Cast };

// One transform with its arguments; only the fields of its kind are meaningful.
struct Transform {
  TransformKind kind = TransformKind::Freeze;
  std::string axis;   // Colwise / Rowwise: the mesh axis to shard over
  int64_t r = 0;      // Lora: rank, > 0
  double alpha = 0;   // Lora: scaling numerator (the lead scales B·A by alpha / r), > 0
  std::string dtype;  // Cast: "fp32", "bf16" or "fp16"

  // Canonical text, as written in a plan file: "colwise(tp)", "lora(r=8, alpha=16)", "freeze", "cast(bf16)".
  std::string to_string() const;
};

// The transform's bare name ("colwise", "lora", ...).
const char* transform_name(TransformKind kind);

// One line of a plan: modules whose path matches `pattern` get `transform`.
struct Rule {
  std::string pattern;
  Transform transform;
  int line = 0;    // 1-based line in the plan's source
  int column = 0;  // 1-based column where the pattern starts
};

// A plan: within it the FIRST rule (in file order) that matches a module wins.
struct Plan {
  std::string name;
  std::string source;  // the file path or "builtin:<name>" it was read from
  int line = 0;        // line of its `plan <name>` header
  std::vector<Rule> rules;
};

// Parses plan text. `what` names the source in messages and is stored in Plan::source.
// Every problem is a ConfigError "<what>:<line>:<col>: <what was expected, what was found>", e.g.
// "plans.txt:3:26: unknown transform 'colwize'; known transforms: colwise, rowwise, lora, freeze,
// unfreeze, cast". Errors: a rule before any `plan` line, a bad or duplicate plan name, a plan with no
// rules, a missing transform, unknown transform, missing/extra parenthesis, missing/unknown/duplicate
// argument, bad number, r <= 0, alpha <= 0, unknown dtype, trailing text, a pattern repeated in a plan.
std::vector<Plan> parse_plans(const std::string& text, const std::string& what);

// Reads and parses a plan file. `path` may also be "builtin:<name>" (see builtin_plan_names()).
// A file that cannot be read is an IoError; an unknown builtin a ConfigError listing the known ones.
std::vector<Plan> load_plans(const std::string& path);

// Names accepted after "builtin:": "bert-tp", "qwen2-tp" (each defines one plan named "tp").
std::vector<std::string> builtin_plan_names();
// The plan-file text of a built-in (so it can be printed, or copied and edited). ConfigError if unknown.
const std::string& builtin_plan_text(const std::string& name);

}  // namespace fme::plans
