// WordPiece model (see wordpiece.h), as HF's models/wordpiece/mod.rs tokenize().
#include "tokenizer/wordpiece.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace fme::tok {
namespace {

class WordPiece : public Model {
 public:
  WordPiece(Vocab vocab, int32_t unk_id, std::string prefix, size_t max_chars)
      : vocab_(std::move(vocab)), unk_id_(unk_id), prefix_(std::move(prefix)), max_chars_(max_chars) {
    for (int32_t id = 0; id < vocab_.id_space(); ++id)
      if (const std::string* t = vocab_.token(id)) max_token_bytes_ = std::max(max_token_bytes_, t->size());
  }

  const Vocab& vocab() const override { return vocab_; }

  void tokenize(std::string_view word, std::vector<int32_t>& out) const override {
    if (count_chars(word) > max_chars_) {
      out.push_back(unk_id_);
      return;
    }
    size_t before = out.size();
    std::string candidate;
    size_t start = 0;
    while (start < word.size()) {
      // Substrings longer than the longest token cannot match: start from there (same result, less work).
      size_t end = std::min(word.size(), start + max_token_bytes_);
      while (end > start && end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) --end;
      int32_t found = -1;
      while (start < end) {
        std::string_view sub = word.substr(start, end - start);
        if (start > 0) {
          candidate.assign(prefix_);
          candidate.append(sub);
          found = vocab_.find(candidate);
        } else {
          found = vocab_.find(sub);
        }
        if (found >= 0) break;
        // Drop the last character of the substring.
        do --end;
        while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
      }
      if (found < 0) {
        out.resize(before);
        out.push_back(unk_id_);
        return;
      }
      out.push_back(found);
      start = end;
    }
  }

 private:
  Vocab vocab_;
  int32_t unk_id_;
  std::string prefix_;
  size_t max_chars_;
  size_t max_token_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Model> make_wordpiece(const Json& j, const std::string& path, const JsonFields& f) {
  Vocab vocab = read_vocab(f.get(j, "vocab", path), path + ".vocab", f);
  std::string unk = f.string_or(j, "unk_token", path, "[UNK]");
  int32_t unk_id = vocab.find(unk);
  if (unk_id < 0) f.fail(path + ".unk_token", "the unknown token '" + unk + "' is not in model.vocab");
  std::string prefix = f.string_or(j, "continuing_subword_prefix", path, "##");
  int64_t max_chars = f.int_or(j, "max_input_chars_per_word", path, 100);
  if (max_chars < 0) f.fail(path + ".max_input_chars_per_word", "expected a non-negative integer, found " +
                                                                    std::to_string(max_chars));
  return std::make_unique<WordPiece>(std::move(vocab), unk_id, std::move(prefix), static_cast<size_t>(max_chars));
}

}  // namespace fme::tok
