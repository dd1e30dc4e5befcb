// Loading a Hugging Face checkpoint into a model, strictly: every parameter must be found with the right
// shape, and every tensor in the checkpoint must be used. Errors name the tensor, expected and got.
#pragma once
#include <memory>
#include <string>

#include "formats/checkpoint.h"
#include "models/model.h"

namespace fme {

struct LoadReport {
  size_t loaded = 0;                    // parameters filled
  std::vector<std::string> ignored;     // checkpoint tensors of heads fme does not run (named, never silent)
};

// Copies the checkpoint's tensors into the model's parameters (converting dtype to the parameter's).
// Accepts a "bert." prefix (BertFor* checkpoints) and ignores, listing them in the report, the tensors of
// task heads fme does not run ("cls.*", "lm_head.weight" when tied and equal to the embedding).
LoadReport load_checkpoint(Model& model, const Checkpoint& ckpt);

// Reads DIR/config.json, builds the model, loads DIR's weights, casts to `dtype`.
std::unique_ptr<Model> load_model(const std::string& dir, at::ScalarType dtype, LoadReport* report = nullptr);

}  // namespace fme
