// Decoders of HF tokenizer.json: turn the token strings of decode() back into text.
// Supported types: ByteLevel, WordPiece, Replace, ByteFallback, Fuse, Strip, Sequence; without a decoder
// tokens are joined with spaces (as HF).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_fields.h"

namespace fme::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF's decode_chain: rewrites the list of token strings; decode() then concatenates them.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const Json& j, const std::string& path, const JsonFields& f);

}  // namespace fme::tok
