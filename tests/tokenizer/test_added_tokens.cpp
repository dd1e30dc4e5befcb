// Added-token flags on a small hand-made tokenizer.json. The cases are those of HF tokenizers' own unit tests
// (tokenizer/added_vocabulary.rs: options_use_cases, test_single_word_is_correct, test_lstrip_unicode_space),
// with HF's expected splits turned into ids of this vocabulary.
#include "test_helpers.h"

namespace {

using Ids = std::vector<int32_t>;

// Vocabulary ids of the test tokenizer.
enum : int32_t { UNK = 0, CLS = 1, SEP = 2, MY = 3, NAME = 4, IS = 5, ANTHONY = 6, ONY = 7, MASK = 8, A = 9,
                 CONT_ONY = 10, HI = 11, THERE = 12, HELLO = 13, WORLD = 14 };

// WordPiece over whitespace-split, lowercased text, with the given added tokens.
fme::Tokenizer make(const std::vector<fme::Json>& added) {
  fme::Json j = {
      {"version", "1.0"},
      {"added_tokens", fme::Json(added)},
      {"normalizer", {{"type", "Lowercase"}}},
      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"},
        {"unk_token", "[UNK]"},
        {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 100},
        {"vocab",
         {{"[UNK]", UNK}, {"[CLS]", CLS}, {"[SEP]", SEP}, {"my", MY}, {"name", NAME}, {"is", IS}, {"anthony", ANTHONY},
          {"ony", ONY}, {"<mask>", MASK}, {"a", A}, {"##ony", CONT_ONY}, {"hi", HI}, {"there", THERE},
          {"hello", HELLO}, {"world", WORLD}}}}}};
  return fme::Tokenizer::from_json(j.dump(), "test-tokenizer.json");
}

fme::Json token(const std::string& content, int32_t id, bool special, bool normalized, bool single_word = false,
                bool lstrip = false, bool rstrip = false) {
  return {{"id", id}, {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
          {"rstrip", rstrip}, {"normalized", normalized}, {"special", special}};
}

TEST(TokenizerAddedTokens, OptionsUseCases) {
  // "my" strips spaces on both sides and matches after lowercasing; "ony" must be a single word.
  auto tok = make({token("my", MY, false, true, false, true, true), token("name", NAME, false, true),
                   token("ony", ONY, false, true, true), token("[CLS]", CLS, true, false),
                   token("[SEP]", SEP, true, false)});
  // HF splits: "[CLS]" | " my " | "name" | " is anthony " | "[SEP]".
  EXPECT_EQ(tok.encode("[CLS] My name is Anthony [SEP]"), (Ids{CLS, MY, NAME, IS, ANTHONY, SEP}));
}

TEST(TokenizerAddedTokens, SingleWord) {
  auto tok = make({token("<mask>", MASK, false, true, true)});
  // HF splits: "<mask>" | " my name " | "<mask>" | " a<mask> <mask>ony " | "<mask>"; in the middle stretch
  // "a<mask>" is a word WordPiece cannot cover ([UNK]) and "<mask>ony" is "<mask>" + "##ony".
  EXPECT_EQ(tok.encode("<mask> My name <mask> A<mask> <mask>ony <mask>"),
            (Ids{MASK, MY, NAME, MASK, UNK, MASK, CONT_ONY, MASK}));
  // Punctuation and dashes are not word characters; a combining mark is.
  EXPECT_EQ(tok.encode("<mask>, <mask>- \xE2\x97\x8C\xCC\xB0<mask>"), (Ids{MASK, UNK, MASK, UNK, UNK}));
}

TEST(TokenizerAddedTokens, LstripRstripTakeUnicodeSpaces) {
  auto tok = make({token("<mask>", MASK, false, true, true, true, true)});
  // HF splits: "hi" | " <mask> " | "there" | "\t<mask>\t" | "<mask>\u2000".
  EXPECT_EQ(tok.encode("Hi <mask> there\t<mask>\t<mask>\xE2\x80\x80"), (Ids{HI, MASK, THERE, MASK, MASK}));
}

TEST(TokenizerAddedTokens, NormalizedFlagChoosesRawOrNormalizedText) {
  // "Hello" is matched in the raw text only as written; "World" is matched after lowercasing.
  auto tok = make({token("Hello", HELLO, false, false), token("World", WORLD, false, true)});
  // The raw "Hello" is the added token; "hello" and "HELLO" reach the model, which knows "hello" too,
  // so compare against a token that only the added-token path produces: "Hellohello" as one word.
  EXPECT_EQ(tok.encode("Hellohello"), (Ids{HELLO, HELLO}));
  EXPECT_EQ(tok.encode("HELLOhello"), (Ids{UNK}));  // one word "hellohello", unknown to WordPiece
  EXPECT_EQ(tok.encode("WORLDworld"), (Ids{WORLD, WORLD}));
}

TEST(TokenizerAddedTokens, LeftmostLongestMatchWins) {
  auto tok = make({token("<m", A, false, false), token("<mask>", MASK, false, false), token("mask>x", ONY, false, false)});
  // At the leftmost position both "<m" and "<mask>" match: the longer wins, and "mask>x" can no longer start.
  EXPECT_EQ(tok.encode("<mask>x"), (Ids{MASK, UNK}));
  EXPECT_EQ(tok.encode("<mx"), (Ids{A, UNK}));
}

TEST(TokenizerAddedTokens, DecodeUsesAddedTokenContent) {
  auto tok = make({token("[CLS]", CLS, true, false), token("<mask>", MASK, false, false)});
  EXPECT_EQ(tok.decode({CLS, HI, MASK, THERE}), "[CLS] hi <mask> there");
  EXPECT_EQ(tok.decode({CLS, HI, MASK, THERE}, true), "hi <mask> there");
}

}  // namespace
