// The tokenizer's Unicode and regex helpers: UTF-8 validation and lossy decoding with the Unicode
// "maximal subpart" rule (as Rust's from_utf8_lossy), lowercase, character classes, and the regex's
// Oniguruma-compatible classes and find_iter rules.
#include <gtest/gtest.h>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace {

using fme::tok::Regex;

const std::string kFffd = "\xEF\xBF\xBD";

TEST(TokenizerUtf8, FindsTheFirstInvalidByte) {
  EXPECT_EQ(fme::tok::find_invalid_utf8("plain ascii text, long enough for the 8-byte path"), std::string_view::npos);
  EXPECT_EQ(fme::tok::find_invalid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\xA4\x97"), std::string_view::npos);
  EXPECT_EQ(fme::tok::find_invalid_utf8("0123456789\xFF"), 10u);
  EXPECT_EQ(fme::tok::find_invalid_utf8("\xE0\x80\x80"), 0u);  // overlong
  EXPECT_EQ(fme::tok::find_invalid_utf8("a\xED\xBF\xBF"), 1u);  // surrogate
}

// The examples of the Unicode Standard, section 3.9 (U+FFFD substitution of maximal subparts).
TEST(TokenizerUtf8, LossyDecodingReplacesMaximalSubparts) {
  EXPECT_EQ(fme::tok::utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d");
  EXPECT_EQ(fme::tok::utf8_lossy("\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41"),
            kFffd + kFffd + kFffd + kFffd + kFffd + kFffd + kFffd + kFffd + "A");
  EXPECT_EQ(fme::tok::utf8_lossy("\xED\xA0\x80\xED\xBF\xBF\xED\xAF\x41"),
            kFffd + kFffd + kFffd + kFffd + kFffd + kFffd + kFffd + kFffd + "A");
  EXPECT_EQ(fme::tok::utf8_lossy("\xF4\x91\x92\x93\xFF\x41\x80\xBF\x42"),
            kFffd + kFffd + kFffd + kFffd + kFffd + "A" + kFffd + kFffd + "B");
  EXPECT_EQ(fme::tok::utf8_lossy("\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41"), kFffd + kFffd + kFffd + kFffd + "A");
}

TEST(TokenizerUnicode, LowercaseUsesFullMappings) {
  EXPECT_EQ(fme::tok::to_lower("ABC \xC3\x89\xCE\xA3"), "abc \xC3\xA9\xCF\x83");
  EXPECT_EQ(fme::tok::to_lower("\xC4\xB0"), "i\xCC\x87");  // U+0130 -> i + combining dot above
}

TEST(TokenizerUnicode, CharacterClasses) {
  EXPECT_TRUE(fme::tok::is_white_space(0x85));
  EXPECT_TRUE(fme::tok::is_white_space(0x3000));
  EXPECT_FALSE(fme::tok::is_white_space(0x180E));  // not White_Space since Unicode 6.3
  EXPECT_FALSE(fme::tok::is_white_space(0x200B));
  EXPECT_TRUE(fme::tok::is_bert_punctuation('$'));  // ASCII symbol, counted as punctuation by BERT
  EXPECT_TRUE(fme::tok::is_bert_punctuation(0x00BF));
  EXPECT_FALSE(fme::tok::is_bert_punctuation(0x20AC));  // currency symbol, Sc
  EXPECT_TRUE(fme::tok::is_word_char(0x0330));
  EXPECT_FALSE(fme::tok::is_word_char('-'));
}

std::vector<std::pair<size_t, size_t>> matches(const std::string& pattern, const std::string& text) {
  Regex re(pattern, false, "test");
  std::vector<std::pair<size_t, size_t>> out;
  re.find_all(text, out);
  return out;
}

TEST(TokenizerRegex, WhitespaceClassIsWhiteSpaceProperty) {
  // U+180E is not whitespace for Oniguruma / HF, though PCRE2's own \s matches it.
  EXPECT_TRUE(matches("\\s", "\xE1\xA0\x8E").empty());
  EXPECT_EQ(matches("\\s+", "a\xC2\x85\xE3\x80\x80" "b").size(), 1u);
  EXPECT_EQ(matches("[^\\s\\p{L}]", "a b\xE1\xA0\x8E").size(), 1u);
  EXPECT_EQ(matches("\\S+", "ab cd").size(), 2u);
}

TEST(TokenizerRegex, EmptyMatchesFollowOnigurumaFindIter) {
  // An empty match right after the previous match is skipped; elsewhere it is reported.
  using V = std::vector<std::pair<size_t, size_t>>;
  EXPECT_EQ(matches("a*", "baab"), (V{{0, 0}, {1, 3}, {4, 4}}));
  EXPECT_EQ(matches("", "ab"), (V{{0, 0}, {1, 1}, {2, 2}}));
}

TEST(TokenizerRegex, TranslationKeepsEscapesAndClasses) {
  EXPECT_EQ(Regex::translate("\\\\s"), "\\\\s");  // an escaped backslash followed by 's'
  EXPECT_EQ(Regex::translate("[]\\w]"), "[]\\p{L}\\p{M}\\p{Nd}\\p{Pc}]");
  EXPECT_EQ(Regex::translate("\\p{N}\\d"), "\\p{N}\\d");
}

TEST(TokenizerRegex, BadPatternIsAFormatErrorNamingTheField) {
  try {
    Regex re("(a", false, "file.json: field 'x'");
    ADD_FAILURE() << "no exception";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("file.json: field 'x'"), std::string::npos) << e.what();
  }
}

}  // namespace
