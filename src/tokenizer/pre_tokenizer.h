// Pre-tokenizers of HF tokenizer.json: they cut normalized text into the pieces the model tokenizes.
// Supported types: Split, ByteLevel, BertPreTokenizer, Whitespace, WhitespaceSplit, Sequence.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/json_fields.h"
#include "tokenizer/pieces.h"

namespace fme::tok {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends the pieces of `piece` to `out`.
  virtual void split(std::string_view piece, Pieces& out) const = 0;
  // True when the pieces are byte-level mapped (the model then sees GPT-2 byte characters).
  virtual bool byte_level() const { return false; }
};

// Builds the pre-tokenizer described by `j` (the JSON at `path`). Unknown types are UnsupportedError.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const std::string& path, const JsonFields& f);

}  // namespace fme::tok
