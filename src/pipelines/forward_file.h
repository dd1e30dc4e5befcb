// `fme forward`: run a model over the batch stored in a safetensors file and store its hook points.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace fme {

// Reads `input_ids` [B,T], `attention_mask` [B,T] (1 = real token, right padding) and optionally
// `token_type_ids` [B,T] from `path`, validating shapes, dtypes and id ranges against `model`.
Batch read_batch(const std::string& path, const Model& model);

// Tokenizes the "text" field of each line of a JSONL file (with special tokens) into one right-padded batch.
Batch read_text_batch(const std::string& jsonl_path, const Tokenizer& tokenizer, const Model& model);

// The hook points `spec` selects (models/hook_select.h), or every point of the model when `spec` is empty.
std::vector<std::string> forward_hooks(const Model& model, const std::string& spec);

// Runs `model` on `batch` and writes `out_path` (atomically): each of `hooks` under its name ([B,T,...], or
// [B,H] for a per-sequence point) as float32, plus the inputs copied; the header's metadata holds `metadata`
// too (fme forward records its compute dtype and why). Returns the bytes written.
uint64_t forward_to_file(Model& model, const Batch& batch, const std::vector<std::string>& hooks,
                         const std::string& out_path, const std::map<std::string, std::string>& metadata = {});

}  // namespace fme
