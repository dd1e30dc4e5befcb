// Added tokens (HF AddedVocabulary): tokens such as <|im_start|> or [CLS] found in the text before anything
// else runs, with HF's leftmost-longest matching and its single_word / lstrip / rstrip / normalized flags.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fme::tok {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// One stretch of text: an added token's id, or text (id -1) for the rest of the pipeline.
struct Segment {
  size_t start, end;
  int32_t id;
};

class AddedTokens {
 public:
  // `normalizer` (may be null) turns the contents of normalized tokens into the patterns they match.
  void build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` on the tokens of one group: raw (normalized=false, matched in the raw text) or
  // normalized (matched in text after normalization). Appends segments covering `text`.
  void split(std::string_view text, bool normalized_group, std::vector<Segment>& out) const;
  bool has_normalized() const { return !norm_.patterns.empty(); }

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view content) const;

 private:
  struct Group {
    std::vector<std::string> patterns;  // what is searched for
    std::vector<size_t> token;          // index into tokens_ of each pattern
    bool first_byte[256] = {};
  };
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;  // id -> index in tokens_ (decode looks up every id)
  Group raw_, norm_;
};

}  // namespace fme::tok
