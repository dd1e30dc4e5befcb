// The tokenization model interface (BPE, WordPiece) and the factory reading tokenizer.json's "model".
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_fields.h"
#include "tokenizer/vocab.h"

namespace fme::tok {

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-tokenized piece (non-empty, valid UTF-8). Thread-safe.
  virtual void tokenize(std::string_view piece, std::vector<int32_t>& out) const = 0;
  virtual const Vocab& vocab() const = 0;
};

// Builds the model of tokenizer.json's "model" object. A model without "type" (the older format) is
// recognised by its fields: "merges" means BPE, "max_input_chars_per_word" or
// "continuing_subword_prefix" without merges means WordPiece.
std::unique_ptr<Model> make_model(const Json& j, const JsonFields& f);

// Reads a {"token": id} vocabulary object (the field at `path`).
Vocab read_vocab(const Json& vocab, const std::string& path, const JsonFields& f);

}  // namespace fme::tok
