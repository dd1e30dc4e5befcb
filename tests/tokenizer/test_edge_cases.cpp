// Edge cases of encode() on the shared tokenizers: empty and whitespace-only text, emoji and other multibyte
// text, invalid UTF-8 (refused with a FormatError naming the offset), added tokens next to text, BERT's
// unknown-word rules, vocabulary queries, and concurrent encoding.
#include <thread>

#include "test_helpers.h"
#include "util/error.h"

namespace {

using Ids = std::vector<int32_t>;

const fme::Tokenizer& qwen() { return tokt::shared_tokenizer("qwen2.5"); }
const fme::Tokenizer& bert() { return tokt::shared_tokenizer("bert-base-uncased"); }

Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(TokenizerEdgeCases, EmptyText) {
  EXPECT_TRUE(qwen().encode("").empty());
  EXPECT_EQ(bert().encode("", true), (Ids{bert().token_to_id("[CLS]"), bert().token_to_id("[SEP]")}));
  EXPECT_TRUE(bert().encode("", false).empty());
  EXPECT_EQ(qwen().decode({}), "");
}

TEST(TokenizerEdgeCases, WhitespaceOnlyText) {
  for (std::string ws : {" ", "   ", "\n\n", " \t\r\n ", "\xE3\x80\x80"}) {
    Ids ids = qwen().encode(ws);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(qwen().decode(ids), ws);  // byte-level BPE keeps whitespace
    EXPECT_TRUE(bert().encode(ws, false).empty());  // BERT drops it
  }
}

TEST(TokenizerEdgeCases, EmojiAndMultibyteText) {
  for (const std::string& s : std::vector<std::string>{"I \xE2\x9D\xA4\xEF\xB8\x8F \xF0\x9F\xA4\x97!", "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
                        "\xE4\xB8\xAD\xE6\x96\x87 \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xCE\xB1\xCE\xB2",
                        std::string("a\0b", 3)}) {
    EXPECT_EQ(qwen().decode(qwen().encode(s)), s);
  }
  // An emoji outside BERT's vocabulary is one word, hence [UNK].
  ASSERT_EQ(bert().token_to_id("\xF0\x9F\xA4\x97"), -1);
  EXPECT_EQ(bert().encode("\xF0\x9F\xA4\x97", false), Ids{bert().token_to_id("[UNK]")});
  // CJK ideographs are spaced out: each one is its own word.
  EXPECT_EQ(bert().encode("\xE4\xB8\xAD\xE6\x96\x87", false),
            (Ids{bert().token_to_id("\xE4\xB8\xAD"), bert().token_to_id("\xE6\x96\x87")}));
}

TEST(TokenizerEdgeCases, NormalizationIsApplied) {
  // Qwen's NFC: a decomposed e + U+0301 encodes like the precomposed U+00E9.
  EXPECT_EQ(qwen().encode("caf" "e\xCC\x81"), qwen().encode("caf\xC3\xA9"));
  // BERT lowercases and strips accents.
  EXPECT_EQ(bert().encode("CAF\xC3\x89"), bert().encode("cafe"));
}

TEST(TokenizerEdgeCases, InvalidUtf8IsRefusedWithTheOffset) {
  const std::pair<std::string, size_t> cases[] = {
      {"abc\xFF", 3}, {"\x80", 0}, {"ok \xC0\xAF", 3}, {"\xED\xA0\x80", 0}, {"abc\xE2\x82", 3}, {"\xF4\x90\x80\x80", 0}};
  for (const auto& [text, offset] : cases) {
    for (const fme::Tokenizer* tok : {&qwen(), &bert()}) {
      try {
        tok->encode(text);
        ADD_FAILURE() << "no exception";
      } catch (const fme::FormatError& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
        EXPECT_NE(msg.find("offset " + std::to_string(offset)), std::string::npos) << msg;
        EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
      }
    }
  }
  EXPECT_NO_THROW(qwen().encode("\xF0\x9F\xA4\x97\xF4\x8F\xBF\xBF"));  // valid 4-byte sequences, incl. U+10FFFF
}

TEST(TokenizerEdgeCases, AddedTokensNextToText) {
  const int32_t start = qwen().token_to_id("<|im_start|>"), end = qwen().token_to_id("<|im_end|>");
  ASSERT_EQ(start, 151644);
  ASSERT_EQ(end, 151645);
  // The token is cut out of the raw text first; the text on each side is encoded on its own.
  EXPECT_EQ(qwen().encode("<|im_start|>user"), cat({{start}, qwen().encode("user")}));
  EXPECT_EQ(qwen().encode("hello<|im_end|>world"), cat({qwen().encode("hello"), {end}, qwen().encode("world")}));
  EXPECT_EQ(qwen().encode("<|im_start|><|im_end|>"), (Ids{start, end}));
  EXPECT_EQ(qwen().encode(" <|im_end|> "), cat({qwen().encode(" "), {end}, qwen().encode(" ")}));
  // An incomplete token is ordinary text.
  for (int32_t id : qwen().encode("<|im_start|")) EXPECT_NE(id, start);
  // BERT's [CLS] in the raw text is the token; lowercased it is not (special tokens are not normalized).
  EXPECT_EQ(bert().encode("[CLS]", false), Ids{101});
  for (int32_t id : bert().encode("[cls]", false)) EXPECT_NE(id, 101);
  EXPECT_EQ(bert().encode("a[SEP]b", false), cat({bert().encode("a", false), {102}, bert().encode("b", false)}));
}

TEST(TokenizerEdgeCases, BertLongWordsAreUnknown) {
  const int32_t unk = bert().token_to_id("[UNK]");
  // max_input_chars_per_word is 100: 101 characters make [UNK]; 100 do not.
  EXPECT_EQ(bert().encode(std::string(101, 'a'), false), Ids{unk});
  Ids hundred = bert().encode(std::string(100, 'a'), false);
  EXPECT_GT(hundred.size(), 1u);
  for (int32_t id : hundred) EXPECT_NE(id, unk);
  // Characters, not bytes, are counted: 60 two-byte characters stay below the limit.
  std::string two_byte;
  for (int i = 0; i < 60; ++i) two_byte += "\xC3\xB1";  // n with tilde, stripped to "n"
  EXPECT_EQ(bert().encode(two_byte, false), bert().encode(std::string(60, 'n'), false));
}

TEST(TokenizerEdgeCases, VocabularyQueries) {
  EXPECT_EQ(qwen().vocab_size(), 151665);  // vocabulary ids 0..151642, added tokens up to 151664
  EXPECT_EQ(tokt::shared_tokenizer("qwen3").vocab_size(), 151669);
  EXPECT_EQ(bert().vocab_size(), 30522);
  EXPECT_EQ(qwen().id_to_token(151644), "<|im_start|>");
  EXPECT_EQ(qwen().token_to_id("<|im_start|>"), 151644);
  EXPECT_EQ(qwen().id_to_token(-1), "");
  EXPECT_EQ(qwen().id_to_token(151665), "");
  EXPECT_EQ(qwen().token_to_id("definitely not a token"), -1);
  EXPECT_EQ(bert().id_to_token(bert().token_to_id("##ing")), "##ing");
}

TEST(TokenizerEdgeCases, ConcurrentEncodingGivesTheSameIds) {
  const auto& docs = tokt::doc_files().front().texts;
  for (const char* name : {"qwen2.5", "bert-base-uncased"}) {
    const fme::Tokenizer& tok = tokt::shared_tokenizer(name);
    std::vector<Ids> want;
    for (const auto& d : docs) want.push_back(tok.encode(d));
    std::vector<std::vector<Ids>> got(4);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t)
      threads.emplace_back([&, t] {
        for (size_t k = 0; k < docs.size(); ++k) got[t].push_back(tok.encode(docs[(k + t * 7) % docs.size()]));
      });
    for (auto& th : threads) th.join();
    for (size_t t = 0; t < got.size(); ++t)
      for (size_t k = 0; k < docs.size(); ++k) EXPECT_EQ(got[t][k], want[(k + t * 7) % docs.size()]) << name;
  }
}

}  // namespace
