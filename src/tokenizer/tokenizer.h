// A Hugging Face tokenizer.json, read natively. The pipeline, as in HF tokenizers:
//   added tokens (matched in the raw text first) -> normalizer -> pre-tokenizer -> model (BPE | WordPiece)
//   -> post-processor (special-token template) ; decoding: ids -> tokens -> decoder -> text
// Supported: byte-level BPE (Qwen2/2.5/3: NFC normalizer, Split regex + ByteLevel pre-tokenizer, merges as
// "a b" strings or ["a","b"] pairs) and WordPiece (BERT: BertNormalizer, BertPreTokenizer, TemplateProcessing
// / BertProcessing). Anything else is an UnsupportedError naming the file and the field.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fme {

class Tokenizer {
 public:
  // Loads DIR/tokenizer.json (or a path to the file itself). Throws FormatError / UnsupportedError.
  static Tokenizer from_file(const std::string& path);
  // Parses tokenizer.json content; `what` names its source in errors.
  static Tokenizer from_json(const std::string& json_text, const std::string& what);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text`; with add_special_tokens the post-processor's template is applied
  // (BERT: [CLS] ... [SEP]; Qwen: nothing), as HF's encode(text, add_special_tokens=...).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Text of `ids` (HF decode); special tokens are dropped when skip_special_tokens.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // Size of the id space: max id + 1 over vocab and added tokens.
  int64_t vocab_size() const;
  // -1 if unknown.
  int32_t token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // "" if unknown
  // Ids of the added tokens marked special (BERT's [CLS]/[SEP]/[PAD], Qwen's <|im_start|>, ...), ascending.
  std::vector<int32_t> special_ids() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fme
