// Pre-tokenizers (see pre_tokenizer.h), following HF tokenizers' pre_tokenizers/*.rs: Split's delimiter
// behaviours, ByteLevel's optional GPT-2 regex and prefix space, BERT's whitespace/punctuation split.
#include "tokenizer/pre_tokenizer.h"

#include <utility>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace fme::tok {
namespace {

using Spans = std::vector<std::pair<size_t, size_t>>;

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// HF's NormalizedString::split: `matches` are the regex matches; together with the gaps between them they
// cover the piece, and the behaviour decides what becomes a piece. Empty pieces are dropped.
void split_by_matches(std::string_view s, const Spans& matches, bool invert, Behavior behavior, Pieces& out) {
  struct Part {
    size_t start, end;
    bool is_match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& [start, end] : matches) {
    if (prev != start) parts.push_back({prev, start, invert});
    parts.push_back({start, end, !invert});
    prev = end;
  }
  if (prev != s.size() || s.empty()) parts.push_back({prev, s.size(), invert});

  std::vector<std::pair<size_t, size_t>> keep;  // pieces to emit
  keep.reserve(parts.size());
  switch (behavior) {
    case Behavior::Removed:
      for (const Part& p : parts)
        if (!p.is_match) keep.emplace_back(p.start, p.end);
      break;
    case Behavior::Isolated:
      for (const Part& p : parts) keep.emplace_back(p.start, p.end);
      break;
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.is_match == prev_match && !keep.empty()) keep.back().second = p.end;
        else keep.emplace_back(p.start, p.end);
        prev_match = p.is_match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.is_match && !prev_match && !keep.empty()) keep.back().second = p.end;
        else keep.emplace_back(p.start, p.end);
        prev_match = p.is_match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;  // walking backwards: "previous" is the part to the right
      std::vector<std::pair<size_t, size_t>> rev;
      for (size_t i = parts.size(); i-- > 0;) {
        const Part& p = parts[i];
        if (p.is_match && !prev_match && !rev.empty()) rev.back().first = p.start;
        else rev.emplace_back(p.start, p.end);
        prev_match = p.is_match;
      }
      keep.assign(rev.rbegin(), rev.rend());
      break;
    }
  }
  for (const auto& [a, b] : keep) out.add(s.substr(a, b - a));
}

Behavior parse_behavior(const std::string& name, const std::string& path, const JsonFields& f) {
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  f.unsupported(path, name, "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const Json& j, const std::string& path, const JsonFields& f) {
    regex_ = Regex::from_pattern(f.get_object(j, "pattern", path), JsonFields::join(path, "pattern"), f);
    behavior_ = parse_behavior(f.get_string(j, "behavior", path), JsonFields::join(path, "behavior"), f);
    invert_ = f.bool_or(j, "invert", path, false);
  }
  void split(std::string_view piece, Pieces& out) const override {
    Spans m;
    regex_->find_all(piece, m);
    split_by_matches(piece, m, invert_, behavior_, out);
  }

 private:
  std::unique_ptr<Regex> regex_;
  Behavior behavior_ = Behavior::Isolated;
  bool invert_ = false;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(const Json& j, const std::string& path, const JsonFields& f) {
    add_prefix_space_ = f.bool_or(j, "add_prefix_space", path, true);
    if (f.bool_or(j, "use_regex", path, true)) {
      // GPT-2's pattern, as in HF's pre_tokenizers/byte_level.rs.
      gpt2_ = std::make_unique<Regex>(
          "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", false,
          f.file() + ": field '" + path + "'");
    }
  }
  bool byte_level() const override { return true; }
  void split(std::string_view piece, Pieces& out) const override {
    std::string prefixed;
    if (add_prefix_space_ && (piece.empty() || piece[0] != ' ')) {
      prefixed.reserve(piece.size() + 1);
      prefixed += ' ';
      prefixed += piece;
      piece = prefixed;
    }
    if (!gpt2_) {
      append_byte_level(out.buffer(), piece);
      out.close();
      return;
    }
    Spans m;
    gpt2_->find_all(piece, m);
    Pieces parts;
    split_by_matches(piece, m, false, Behavior::Isolated, parts);
    for (size_t i = 0; i < parts.size(); ++i) {
      append_byte_level(out.buffer(), parts[i]);
      out.close();
    }
  }

 private:
  bool add_prefix_space_ = true;
  std::unique_ptr<Regex> gpt2_;
};

// HF's BertPreTokenizer: split on whitespace (removed), then isolate every punctuation character.
class BertPreTokenizer : public PreTokenizer {
 public:
  void split(std::string_view s, Pieces& out) const override {
    size_t start = 0, i = 0;
    while (i < s.size()) {
      size_t at = i;
      char32_t c = next_cp(s, i);
      if (is_white_space(c)) {
        out.add(s.substr(start, at - start));
        start = i;
      } else if (is_bert_punctuation(c)) {
        out.add(s.substr(start, at - start));
        out.add(s.substr(at, i - at));
        start = i;
      }
    }
    out.add(s.substr(start));
  }
};

// HF's WhitespaceSplit: split on whitespace, removing it.
class WhitespaceSplitPreTokenizer : public PreTokenizer {
 public:
  void split(std::string_view s, Pieces& out) const override {
    size_t start = 0, i = 0;
    while (i < s.size()) {
      size_t at = i;
      if (is_white_space(next_cp(s, i))) {
        out.add(s.substr(start, at - start));
        start = i;
      }
    }
    out.add(s.substr(start));
  }
};

// HF's Whitespace: keeps the matches of \w+|[^\w\s]+.
class WhitespacePreTokenizer : public PreTokenizer {
 public:
  explicit WhitespacePreTokenizer(const std::string& where) : re_("\\w+|[^\\w\\s]+", false, where) {}
  void split(std::string_view s, Pieces& out) const override {
    Spans m;
    re_.find_all(s, m);
    split_by_matches(s, m, true, Behavior::Removed, out);
  }

 private:
  Regex re_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  SequencePreTokenizer(const Json& j, const std::string& path, const JsonFields& f) {
    const Json& list = f.get_array(j, "pretokenizers", path);
    for (size_t i = 0; i < list.size(); ++i) {
      steps_.push_back(make_pre_tokenizer(list[i], path + ".pretokenizers[" + std::to_string(i) + "]", f));
      byte_level_ = byte_level_ || steps_.back()->byte_level();
    }
  }
  bool byte_level() const override { return byte_level_; }
  void split(std::string_view piece, Pieces& out) const override {
    if (steps_.empty()) {
      out.add(piece);
      return;
    }
    Pieces a, b;
    a.add(piece);
    for (size_t s = 0; s < steps_.size(); ++s) {
      Pieces& dst = (s + 1 == steps_.size()) ? out : b;
      if (&dst == &b) b.clear();
      for (size_t i = 0; i < a.size(); ++i) steps_[s]->split(a[i], dst);
      if (&dst == &b) std::swap(a, b);
    }
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
  bool byte_level_ = false;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const std::string& path, const JsonFields& f) {
  if (!j.is_object()) f.fail(path, "expected an object, found " + JsonFields::found(j));
  std::string type = f.get_string(j, "type", path);
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(j, path, f);
  if (type == "ByteLevel") return std::make_unique<ByteLevelPreTokenizer>(j, path, f);
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>(f.file() + ": field '" + path + "'");
  if (type == "Sequence") return std::make_unique<SequencePreTokenizer>(j, path, f);
  f.unsupported(path + ".type", type, "Split, ByteLevel, BertPreTokenizer, Whitespace, WhitespaceSplit, Sequence");
}

}  // namespace fme::tok
