// UTF-8 and Unicode helpers of the tokenizer: decoding/encoding code points, validation, lossy decoding, and
// the character classes HF tokenizers uses (Rust's char::is_whitespace, BERT punctuation/control, ...).
// Categories, case mapping and normalization forms come from utf8proc; only what utf8proc lacks is written here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fme::tok {

// Decodes the code point starting at s[i] (s must be valid UTF-8) and advances i past it.
inline char32_t next_cp(std::string_view s, size_t& i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  unsigned char c = p[0];
  if (c < 0x80) {
    i += 1;
    return c;
  }
  if (c < 0xE0) {
    i += 2;
    return (char32_t(c & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (c < 0xF0) {
    i += 3;
    return (char32_t(c & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  i += 4;
  return (char32_t(c & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// Length in bytes of the UTF-8 sequence starting with lead byte c (valid UTF-8 assumed).
inline size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

// Appends the UTF-8 encoding of cp.
void append_utf8(std::string& out, char32_t cp);

// Offset of the first byte that is not part of a well-formed UTF-8 sequence, or npos when s is valid.
size_t find_invalid_utf8(std::string_view s);

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Number of code points in valid UTF-8.
size_t count_chars(std::string_view s);

// Rust char::is_whitespace (the Unicode White_Space property).
bool is_white_space(char32_t c);
// The characters of Rust regex's \w: letters, marks, decimal digits, connector punctuation, ZWNJ/ZWJ.
bool is_word_char(char32_t c);
// BERT punctuation: ASCII punctuation or any Unicode P* category.
bool is_bert_punctuation(char32_t c);
// BERT "control": categories Cc, Cf, Co except \t \n \r.
bool is_bert_control(char32_t c);
// Unicode category Mn.
bool is_mark_nonspacing(char32_t c);
// The CJK ideograph blocks BERT surrounds with spaces.
bool is_cjk_ideograph(char32_t c);

// Normalization forms (utf8proc); input must be valid UTF-8.
enum class NormForm { NFC, NFD, NFKC, NFKD };
std::string normalize_form(std::string_view s, NormForm form);
// Rust char::to_lowercase applied to every char (full mapping, no context).
std::string to_lower(std::string_view s);

}  // namespace fme::tok
