// Normalizers of HF tokenizer.json: they rewrite each stretch of text between added tokens before
// pre-tokenization. Supported types: NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, BertNormalizer,
// Prepend, Replace (SentencePiece-style "▁" handling), Sequence.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/json_fields.h"

namespace fme::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // The normalized form of `s` (valid UTF-8 in, valid UTF-8 out).
  virtual std::string normalize(std::string_view s) const = 0;
};

// Builds the normalizer described by `j` (the JSON at `path`). Unknown types are UnsupportedError.
std::unique_ptr<Normalizer> make_normalizer(const Json& j, const std::string& path, const JsonFields& f);

}  // namespace fme::tok
