// PCRE2-backed regex with HF/Oniguruma match semantics (see regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <memory>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace fme::tok {
namespace {

// Oniguruma's \s is the White_Space property; PCRE2's UCP \s also matches U+180E. Spelled out to match HF.
constexpr const char* kSpaceSet = "\\t-\\r\\x20\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";
// Oniguruma's \w: Letter | Mark | Decimal_Number | Connector_Punctuation (PCRE2's UCP \w uses all of N).
constexpr const char* kWordSet = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
// Oniguruma (Ruby syntax) \h is a hex digit; PCRE2's \h is horizontal space.
constexpr const char* kHexSet = "0-9a-fA-F";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

std::string Regex::translate(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 64);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      ++i;
      const char* set = e == 's' || e == 'S' ? kSpaceSet : e == 'w' || e == 'W' ? kWordSet
                      : e == 'h' || e == 'H' ? kHexSet : nullptr;
      bool negated = e == 'S' || e == 'W' || e == 'H';
      if (set && class_depth == 0) {
        out += negated ? "[^" : "[";
        out += set;
        out += "]";
      } else if (set && !negated) {
        out += set;  // inside a class the set's members join it
      } else {
        out += '\\';  // anything else (including a negated set inside a class) is left to PCRE2
        out += e;
      }
      continue;
    }
    if (c == '[') {
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

Regex::Regex(const std::string& pattern, bool literal, const std::string& where) : where_(where) {
  // A literal is quoted (\Q...\E, each "\E" in it spelled out) rather than compiled with PCRE2_LITERAL,
  // which PCRE2 refuses together with PCRE2_UCP.
  std::string pat;
  if (literal) {
    pat = "\\Q";
    for (size_t i = 0; i < pattern.size(); ++i) {
      if (pattern.compare(i, 2, "\\E") == 0) {
        pat += "\\E\\\\E\\Q";
        ++i;
      } else {
        pat += pattern[i];
      }
    }
    pat += "\\E";
  } else {
    pat = translate(pattern);
  }
  uint32_t options = PCRE2_UTF | PCRE2_UCP;
  int err = 0;
  PCRE2_SIZE err_off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(), options, &err, &err_off, nullptr);
  if (!code_)
    throw FormatError(where + ": invalid regex at offset " + std::to_string(err_off) + ": " + pcre2_message(err) +
                      " (pattern " + pattern + ")");
  // Without JIT (unsupported CPU) pcre2_match still works, only slower.
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(code_); }

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
  if (!md) throw Error(where_ + ": out of memory for regex match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  const size_t n = s.size();
  size_t last_end = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (last_end <= n) {
    // The subject was validated once by the caller; checking it at every start offset would be quadratic.
    int rc = jit_ ? pcre2_jit_match(code_, subject, n, last_end, PCRE2_NO_UTF_CHECK, md.get(), nullptr)
                  : pcre2_match(code_, subject, n, last_end, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter keeps its backtracking stack on the heap
      rc = pcre2_match(code_, subject, n, last_end, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error(where_ + ": regex match failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t start = ov[0], end = ov[1];
    // Oniguruma's find_iter skips an empty match that ends where the previous match ended.
    if (start == end && have_last && last_match_end == end) {
      last_end += last_end < n ? utf8_len(static_cast<unsigned char>(s[last_end])) : 1;
      continue;
    }
    if (end < start) end = start;  // \K in a lookahead can do this; treat as empty
    out.emplace_back(start, end);
    have_last = true;
    last_match_end = end;
    last_end = end;
  }
}


std::unique_ptr<Regex> Regex::from_pattern(const Json& pattern, const std::string& path, const JsonFields& f) {
  if (!pattern.is_object()) f.fail(path, "expected {\"Regex\": ...} or {\"String\": ...}, found " + JsonFields::found(pattern));
  if (const Json* r = JsonFields::find(pattern, "Regex")) {
    if (!r->is_string()) f.fail(path + ".Regex", "expected a string, found " + JsonFields::found(*r));
    return std::make_unique<Regex>(r->get<std::string>(), false, f.file() + ": field '" + path + ".Regex'");
  }
  if (const Json* s = JsonFields::find(pattern, "String")) {
    if (!s->is_string()) f.fail(path + ".String", "expected a string, found " + JsonFields::found(*s));
    return std::make_unique<Regex>(s->get<std::string>(), true, f.file() + ": field '" + path + ".String'");
  }
  f.fail(path, "expected {\"Regex\": ...} or {\"String\": ...}, found " + JsonFields::found(pattern));
}

std::string Regex::replace_all(std::string_view s, std::string_view content) const {
  std::vector<std::pair<size_t, size_t>> m;
  find_all(s, m);
  if (m.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size() + m.size() * content.size());
  size_t pos = 0;
  for (const auto& [a, b] : m) {
    out.append(s.data() + pos, a - pos);
    out.append(content);
    pos = b;
  }
  out.append(s.data() + pos, s.size() - pos);
  return out;
}

}  // namespace fme::tok
