// `fme train --inputs FILE.safetensors`: one fixed batch, in the layout of the HF training goldens
// (train.safetensors): input_ids [B,T], attention_mask [B,T] (optional: all ones), token_type_ids [B,T]
// (optional), labels [B,T] with -100 where a position does not count (causal labels unshifted, as HF takes
// them). Integer tensors of any width; checked against the model before any compute.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "models/model.h"

namespace fme {

struct LabeledBatch {
  Batch batch;
  at::Tensor labels;  // [B,T] int64
  int64_t rows() const { return batch.input_ids.size(0); }
  // Rows [first, first + n) of every tensor.
  LabeledBatch slice(int64_t first, int64_t n) const;
};

// ShapeError / ConfigError naming `path` and the field: a missing or non-integer tensor, shapes that differ
// from input_ids', ids outside [0, vocab), labels other than -100 or an id, mask values other than 0/1,
// token types past the model's count, or a sequence longer than the model's positions.
LabeledBatch read_fixed_batch(const std::string& path, const Model& model);

}  // namespace fme
