// Resolution of plans against a model and a mesh into an explicit PlanTable: which rule (if any) of each
// plan matched each module, and the final state of every parameter (partition spec, global and local
// shape, dtype, trainable, added by LoRA). The table is the dry run `fme prepare --explain` prints and the
// one thing the torch layer applies, in one pass; nothing here touches tensors.
//
// Semantics: plans apply in order, each to the result of the previous ones. Within a plan every module is
// matched against the rules in file order and the FIRST match wins; all of a plan's matches are found in
// one traversal of the module list and then applied as one batch. A module gets at most one transform per
// plan. Dims are written [out, in] for Linear weights and [num, dim] for Embedding weights.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "plans/mesh.h"
#include "plans/plan.h"

namespace fme::plans {

// One parameter of a module as the model builder describes it (before any plan).
struct ParamDesc {
  std::string name;            // local name: "weight", "bias"
  std::vector<int64_t> shape;  // global shape
  std::string dtype;           // "fp32", "bf16", ...
  bool trainable = true;
};

// One module in tree order. Only modules with parameters (or that a plan should see) need listing;
// containers may be left out.
struct ModuleDesc {
  std::string path;  // dotted HF path: "encoder.layer.0.attention.self.query"
  std::string type;  // "Linear", "Conv1D" (weight [in, out]), "Embedding", "LayerNorm", "RMSNorm", ...
  std::vector<ParamDesc> params;
  // > 1: the out features are that many equal fused blocks (GPT-2's c_attn: q, k, v); colwise splits each.
  int64_t fused_parts = 1;
};

// Per-dimension mesh axis (or none = replicated along that dim), like jax.sharding.PartitionSpec.
struct PartitionSpec {
  std::vector<std::optional<std::string>> dims;

  bool replicated() const;  // no dim is sharded
  // JAX style: "P('tp', None)", "P('tp')", "P(None)"; a 0-dim parameter prints "P()".
  std::string to_string() const;
  bool operator==(const PartitionSpec& o) const { return dims == o.dims; }
};

// The final state of one parameter after all plans.
struct ParamRow {
  std::string name;                   // full dotted name: "<module path>.weight", "<module path>.lora_A"
  std::string local_name;             // "weight", "bias", "lora_A", "lora_B"
  PartitionSpec spec;                 // one entry per dim of global_shape
  std::vector<int64_t> global_shape;  //
  std::vector<int64_t> local_shape;   // global_shape[d] / size(spec[d]) (splits are always even)
  // > 1: the sharded dim is that many equal fused blocks, each split alone; the local dim holds one run of
  // local_shape[d] / parts from each block.
  int64_t parts = 1;
  std::string dtype;                  // after cast
  bool trainable = true;              // after freeze / unfreeze / lora
  bool added_by_lora = false;         // lora_A / lora_B, which the torch layer must create

  // First global index along `dim` held by `rank`: coordinate of rank on spec[dim]'s axis * local size;
  // 0 for a replicated dim. The lead slices (or initialises) global[offset : offset + local_shape[dim]].
  // With fused parts, the offset within each part (local size / parts per run).
  int64_t shard_offset(size_t dim, const Mesh& mesh, int64_t rank) const;
};

// Which rule of one plan matched a module.
struct Match {
  std::string plan;     // plan name
  std::string pattern;  // the rule's pattern
  int line = 0;         // the rule's line in the plan's source
  Transform transform;
};

enum class Sharding { None, Colwise, Rowwise };

struct ModuleRow {
  std::string path;
  std::string type;
  int64_t fused_parts = 1;                    // as ModuleDesc
  std::vector<std::optional<Match>> matches;  // one entry per plan, in plan order; nullopt = no rule matched
  std::vector<ParamRow> params;               // the module's params in input order, then lora_A, lora_B

  // Summary of the final state, so the torch layer need not re-derive it from the matches:
  Sharding sharding = Sharding::None;
  std::string shard_axis;         // set when sharding != None
  std::optional<int64_t> lora_r;  // set when a lora transform applied
  double lora_alpha = 0;          // scaling is lora_alpha / *lora_r

  bool transformed() const;  // any plan matched
  const ParamRow* param(const std::string& local_name) const;
};

struct PlanTable {
  Mesh mesh;
  std::vector<std::string> plan_names;    // in application order
  std::vector<ModuleRow> modules;         // one per input module, in input (tree) order
  std::vector<std::string> unmatched;     // "plan 'tp' line 7: pattern '*.q_proj' matched no module"
  std::unordered_map<std::string, size_t> by_path;  // module path -> index in `modules`

  const ModuleRow* find(const std::string& path) const;  // nullptr if absent
  // Every parameter, in module order (a flat view for optimizer setup and checkpoint I/O).
  std::vector<const ParamRow*> all_params() const;
};

// Resolves `plans` (applied in order) over `modules` for `mesh`. Errors, all naming the plan and line:
//  - ConfigError: duplicate plan names; a rule naming an axis the mesh lacks (lists the mesh's axes);
//    a transform matching a module type that does not support it, e.g. "plan 'tp' line 3: colwise(tp)
//    matched 'encoder.layer.0.attention.output.LayerNorm', a LayerNorm; colwise applies to Linear, Conv1D
//    and Embedding"; sharding a module a second time; lora on a module that already has LoRA;
//    a repeated module path or parameter name; an invalid mesh.
//  - ShapeError: a sharded dim that the axis size does not divide (names parameter, dim, size, axis size);
//    a Linear/Embedding whose `weight` is missing or not 2-D, or whose bias does not match.
// Patterns that match no module are reported in PlanTable::unmatched, not thrown.
PlanTable resolve(const std::vector<ModuleDesc>& modules, const std::vector<Plan>& plans, const Mesh& mesh);

}  // namespace fme::plans
