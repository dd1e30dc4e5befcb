// The architecture registry: what fme knows of each model family beside its modules — which config.json
// model_type values it serves, how to build it, how checkpoint names map onto its parameters, its built-in
// tensor-parallel plan and its FLOP count. One row per family, each defined in the family's folder
// (src/models/<family>/architecture.cpp) and listed once in registry.cpp; the rest of fme asks the registry
// (or the Model) and never tests a model_type by name.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model_config.h"
#include "models/build.h"

namespace fme {

class Model;

// How a checkpoint's tensor names relate to the model's parameter paths (the HF names of one class).
struct CheckpointNames {
  // Checkpoints saved from another class of the family name the same tensors differently: each rule says
  // that the parameter "<model_prefix>X" may be stored as "<stored_prefix>X". A rule applies when the
  // checkpoint lacks `probe` (a parameter path) and holds its renamed form.
  struct Prefix {
    std::string model_prefix, stored_prefix, probe;
    std::vector<std::string> keep;  // parameter prefixes the class stores under their own names ("cls.")
  };
  std::vector<Prefix> prefixes;
  // Tensors that are not parameters (heads fme does not build, buffers it computes), skipped on load.
  std::vector<std::string> ignored_prefixes, ignored_suffixes, ignored_names;
  bool ignored(const std::string& name) const;
};

struct Architecture {
  std::string family;                    // "decoder", "bert", "gpt2": its folder under src/models
  std::vector<std::string> model_types;  // the config.json model_type values it serves
  std::function<std::unique_ptr<Model>(const ModelConfig&, Builder&)> create;
  CheckpointNames names;
  std::string tp_plan;  // the built-in tensor-parallel plan ("builtin:decoder-tp")
  // Matmul FLOPs of blocks 0..last_block (-1: all) on B sequences of T tokens (no padding): 2 x (block
  // linear weights) per token, plus attention's QK^T and PV (2 x 2 x hd per head per visible key).
  std::function<double(const ModelConfig&, int64_t B, int64_t T, int64_t last_block)> flops;
  // Optional: fits the config to what a checkpoint holds, given whether it has a tensor of some name
  // (BERT: no pooler in a BertForMaskedLM checkpoint).
  std::function<void(ModelConfig&, const std::function<bool(const std::string&)>& has)> fit_checkpoint;
  // Training: the objective the family trains with by default ("causal" next-token, "mlm" masked LM), and,
  // where a checkpoint may lack the head it needs, a function that adds it to the config and returns the
  // path prefix of the added parameters ("cls." for BERT) or "" when the config has it already.
  std::string training_objective = "causal";
  std::function<std::string(ModelConfig&)> add_lm_head;
};

// Every architecture, in registry order.
const std::vector<const Architecture*>& architectures();
// The architecture serving `model_type`; ConfigError listing the supported ones for any other.
const Architecture& architecture_for(const std::string& model_type);
const Architecture& architecture_for(const ModelConfig& config);

}  // namespace fme
