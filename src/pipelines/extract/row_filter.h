// Which token rows of a sample an extraction stores. SAE training usually leaves out the rows of special
// tokens (BERT's [CLS]/[SEP], chat markers) and of a leading BOS, whose activations are outliers (attention
// sinks) that would dominate the statistics. Left-out rows are not stored at all; the stored rows keep their
// token ids and their positions in the sample (token_positions), so everything still lines up.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace fme {

class Tokenizer;

// The BOS id a model declares: config.json's bos_token_id, else tokenizer_config.json's bos_token (a string
// or {"content": ...}) looked up in `tokenizer` (may be null); -1 when neither names one.
int32_t declared_bos_id(const std::string& model_dir, const Tokenizer* tokenizer);

class RowFilter {
 public:
  RowFilter() = default;  // keeps every row
  // `exclude_special`: drop the tokenizer's special tokens anywhere (needs a tokenizer); `exclude_bos`: drop
  // position 0 when it holds the model's BOS token (config.json bos_token_id, else tokenizer_config.json's
  // bos_token). ConfigError naming `model_dir` when what a flag needs is not there.
  RowFilter(bool exclude_special, bool exclude_bos, const Tokenizer* tokenizer, const std::string& model_dir);

  bool keeps_all() const { return special_.empty() && bos_ < 0; }
  // Positions of the rows of `ids` to store, ascending.
  std::vector<int64_t> kept(const std::vector<int32_t>& ids) const;
  int32_t bos_id() const { return bos_; }

 private:
  std::unordered_set<int32_t> special_;
  int32_t bos_ = -1;
};

}  // namespace fme
