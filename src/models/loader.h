// Loading a Hugging Face checkpoint into a model, strictly: every parameter must be found with the right
// shape, and every tensor in the checkpoint must be used. Errors name the tensor, expected and got.
#pragma once
#include <memory>
#include <set>
#include <string>

#include "formats/checkpoint.h"
#include "models/architecture.h"
#include "models/model.h"

namespace fme {

// The name under which `ckpt` stores each of `model`'s parameters: the HF path itself, or its renamed form
// when the checkpoint was saved from another class of the family (the registry's CheckpointNames:
// BertForMaskedLM's "bert." prefix, GPT2Model without "transformer.").
class CheckpointNameMap {
 public:
  CheckpointNameMap(const Model& model, const Checkpoint& ckpt);
  std::string operator()(const std::string& param) const;
  // Whether the family's rules skip `stored` (a head fme does not build, a buffer it computes).
  bool ignored(const std::string& stored) const;
  // The renames in effect, for people: "'*' stored as 'bert.*'".
  std::vector<std::string> renames() const;

 private:
  const CheckpointNames* rules_;
  std::vector<const CheckpointNames::Prefix*> renames_;
};

struct LoadReport {
  size_t loaded = 0;                    // parameters filled
  std::vector<std::string> ignored;     // checkpoint tensors of heads fme does not run (named, never silent)
};

// Copies the checkpoint's tensors into the model's parameters (converting dtype to the parameter's).
// Accepts a "bert." prefix (BertFor* checkpoints) and ignores, listing them in the report, the tensors of
// task heads fme does not run ("cls.*", "lm_head.weight" when tied and equal to the embedding).
// A sharded model (model.shards()) reads only its slice of each tensor, through the mapping. Parameters in
// `not_in_checkpoint` (e.g. LoRA adapters a plan added) are left for the caller to initialise.
LoadReport load_checkpoint(Model& model, const Checkpoint& ckpt, const std::set<std::string>& not_in_checkpoint = {});

// DIR/config.json, fitted to what `ckpt` holds (the registry's fit_checkpoint: a BertForMaskedLM checkpoint
// has no pooler).
ModelConfig load_model_config(const std::string& dir, const Checkpoint& ckpt);

// Reads DIR/config.json, builds the model, loads DIR's weights into parameters of dtype `dtype`, computes in it.
std::unique_ptr<Model> load_model(const std::string& dir, at::ScalarType dtype, LoadReport* report = nullptr);
// Same, with the weights stored in `weights` and converted op by op to the `compute` dtype (Model::compute_dtype).
std::unique_ptr<Model> load_model(const std::string& dir, at::ScalarType compute, at::ScalarType weights,
                                  LoadReport* report = nullptr);

}  // namespace fme
