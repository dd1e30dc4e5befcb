// `fme forward`: run a model over the batch stored in a safetensors file and store every capture point.
#pragma once
#include <map>
#include <string>

#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace fme {

// Reads `input_ids` [B,T], `attention_mask` [B,T] (1 = real token, right padding) and optionally
// `token_type_ids` [B,T] from `path`, validating shapes, dtypes and id ranges against `model`.
Batch read_batch(const std::string& path, const Model& model);

// Tokenizes the "text" field of each line of a JSONL file (with special tokens) into one right-padded batch.
Batch read_text_batch(const std::string& jsonl_path, const Tokenizer& tokenizer, const Model& model);

// Runs `model` on `batch` and writes `out_path` (atomically): embeddings, resid_post.{i}, final
// (and BERT's pooler_output) as float32, plus the inputs copied; the header's metadata holds `metadata` too
// (fme forward records its compute dtype and why). Returns the bytes written.
uint64_t forward_to_file(Model& model, const Batch& batch, const std::string& out_path,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace fme
