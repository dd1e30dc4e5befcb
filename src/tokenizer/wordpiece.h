// WordPiece model (HF models/wordpiece): greedy longest-match-first with a continuing-subword prefix;
// a word that cannot be covered, or is longer than max_input_chars_per_word, becomes the unknown token.
#pragma once
#include <memory>

#include "tokenizer/model.h"

namespace fme::tok {

std::unique_ptr<Model> make_wordpiece(const Json& j, const std::string& path, const JsonFields& f);

}  // namespace fme::tok
