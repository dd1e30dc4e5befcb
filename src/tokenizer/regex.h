// A compiled PCRE2 regex (UTF + UCP, JIT) that reproduces how HF tokenizers (Oniguruma) finds matches:
// its find_iter order, its empty-match rule, and its meaning of \s and \w.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/json_fields.h"

struct pcre2_real_code_8;

namespace fme::tok {

class Regex {
 public:
  // `pattern` in the syntax HF's tokenizer.json uses (Oniguruma); `literal` matches it as a plain string.
  // `where` names the file and field for the FormatError a bad pattern raises.
  Regex(const std::string& pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends [start, end) byte offsets of every match in `s` (valid UTF-8), in order. Thread-safe.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

  // The regex of a tokenizer.json pattern object: {"Regex": "..."} or {"String": "..."} (a literal), at `path`.
  static std::unique_ptr<Regex> from_pattern(const Json& pattern, const std::string& path, const JsonFields& f);
  // `s` with every match replaced by `content` (HF's NormalizedString::replace / the Replace decoder).
  std::string replace_all(std::string_view s, std::string_view content) const;
  // The PCRE2 pattern an Oniguruma pattern becomes (exposed for tests).
  static std::string translate(const std::string& onig_pattern);

 private:
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  std::string where_;
};

}  // namespace fme::tok
