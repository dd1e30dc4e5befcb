// Normalizers (see normalizer.h), following HF tokenizers' normalizers/{unicode,bert,strip,utils}.rs.
// Unicode work (normalization forms, categories, case) is utf8proc's, via unicode.h.
#include "tokenizer/normalizer.h"

#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace fme::tok {
namespace {

class FormNormalizer : public Normalizer {
 public:
  explicit FormNormalizer(NormForm form) : form_(form) {}
  std::string normalize(std::string_view s) const override { return normalize_form(s, form_); }

 private:
  NormForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  std::string normalize(std::string_view s) const override { return to_lower(s); }
};

// Removes nonspacing marks (HF's StripAccents does not decompose first; it is meant to follow NFD).
std::string strip_marks(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t at = i;
    char32_t c = next_cp(s, i);
    if (!is_mark_nonspacing(c)) out.append(s.data() + at, i - at);
  }
  return out;
}

class StripAccentsNormalizer : public Normalizer {
 public:
  std::string normalize(std::string_view s) const override { return strip_marks(s); }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view s) const override {
    size_t begin = 0, end = s.size();
    if (left_) {
      size_t i = 0;
      while (i < s.size()) {
        size_t at = i;
        if (!is_white_space(next_cp(s, i))) {
          i = at;
          break;
        }
      }
      begin = i;
    }
    if (right_) {
      // Walk forward remembering where the trailing whitespace run starts.
      size_t i = begin, run = s.size();
      bool in_run = false;
      while (i < s.size()) {
        size_t at = i;
        bool ws = is_white_space(next_cp(s, i));
        if (ws && !in_run) run = at;
        in_run = ws;
      }
      end = in_run ? run : s.size();
    }
    return std::string(s.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

// HF's BertNormalizer: clean text, space out CJK ideographs, strip accents (NFD, drop Mn), lowercase.
class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(chinese), strip_accents_(strip_accents), lowercase_(lowercase) {}
  std::string normalize(std::string_view s) const override {
    std::string cur;
    cur.reserve(s.size() + 8);
    size_t i = 0;
    while (i < s.size()) {
      size_t at = i;
      char32_t c = next_cp(s, i);
      if (clean_text_) {
        if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
        if (c == '\t' || c == '\n' || c == '\r' || is_white_space(c)) {
          cur += ' ';
          continue;
        }
      }
      if (chinese_ && is_cjk_ideograph(c)) {
        cur += ' ';
        cur.append(s.data() + at, i - at);
        cur += ' ';
        continue;
      }
      cur.append(s.data() + at, i - at);
    }
    if (strip_accents_) cur = strip_marks(normalize_form(cur, NormForm::NFD));
    if (lowercase_) cur = to_lower(cur);
    return cur;
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

// HF's Prepend: `prepend` before any non-empty text (SentencePiece's leading "▁").
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  std::string normalize(std::string_view s) const override { return s.empty() ? std::string() : prepend_ + std::string(s); }

 private:
  std::string prepend_;
};

// HF's Replace: every match of the pattern (a literal or a regex) becomes `content`.
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string_view s) const override { return pattern_->replace_all(s, content_); }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view s) const override {
    std::string cur(s);
    for (const auto& n : steps_) cur = n->normalize(cur);
    return cur;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const std::string& path, const JsonFields& f) {
  if (!j.is_object()) f.fail(path, "expected an object, found " + JsonFields::found(j));
  std::string type = f.get_string(j, "type", path);
  if (type == "NFC") return std::make_unique<FormNormalizer>(NormForm::NFC);
  if (type == "NFD") return std::make_unique<FormNormalizer>(NormForm::NFD);
  if (type == "NFKC") return std::make_unique<FormNormalizer>(NormForm::NFKC);
  if (type == "NFKD") return std::make_unique<FormNormalizer>(NormForm::NFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(f.bool_or(j, "strip_left", path, true),
                                             f.bool_or(j, "strip_right", path, true));
  if (type == "BertNormalizer") {
    bool lowercase = f.bool_or(j, "lowercase", path, true);
    // strip_accents: null means "same as lowercase", as in HF.
    return std::make_unique<BertNormalizer>(f.bool_or(j, "clean_text", path, true),
                                            f.bool_or(j, "handle_chinese_chars", path, true),
                                            f.bool_or(j, "strip_accents", path, lowercase), lowercase);
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(f.get_string(j, "prepend", path));
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(
        Regex::from_pattern(f.get_object(j, "pattern", path), JsonFields::join(path, "pattern"), f),
        f.get_string(j, "content", path));
  if (type == "Sequence") {
    const Json& list = f.get_array(j, "normalizers", path);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(make_normalizer(list[i], path + ".normalizers[" + std::to_string(i) + "]", f));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  f.unsupported(path + ".type", type,
                "NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Strip, BertNormalizer, Prepend, Replace, Sequence");
}

}  // namespace fme::tok
