// Decoding: byte-level BPE is lossless after NFC, so decode(encode(text)) must give back the NFC text for the
// Qwen tokenizers; BERT's WordPiece decoder is checked on cases worked out from HF's decoder rules.
#include <utf8proc.h>

#include <cstdlib>

#include "test_helpers.h"

namespace {

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                        &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  EXPECT_GE(n, 0);
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

class TokenizerQwenRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerQwenRoundTrip, EveryDocumentDecodesToItsNfcText) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer(GetParam());
  size_t total = 0, ok = 0, not_nfc = 0;
  for (const auto& doc : tokt::doc_files()) {
    for (size_t n = 0; n < doc.texts.size(); ++n) {
      const std::string& text = doc.texts[n];
      std::string want = nfc(text);
      not_nfc += want != text;
      std::string got = tok.decode(tok.encode(text));
      ++total;
      if (got == want) ++ok;
      else ADD_FAILURE() << doc.path << " doc " << n << " does not round-trip";
    }
  }
  std::cout << "[ round-trip ] " << GetParam() << ": " << ok << "/" << total << " documents (" << not_nfc
            << " not NFC before)\n";
  EXPECT_EQ(ok, total);
}

INSTANTIATE_TEST_SUITE_P(Shared, TokenizerQwenRoundTrip, ::testing::Values("qwen2.5", "qwen3"),
                         [](const auto& info) { return info.param == "qwen3" ? std::string("qwen3") : std::string("qwen2_5"); });

// GPT-2 and Llama 3 (byte-level BPE, no normalizer) and Mistral and Gemma 3 (SentencePiece-style BPE: "▁" for
// spaces, byte fallback for what the vocabulary lacks) decode every document back to its exact text, with
// the special tokens their templates add (<s>, <bos>, <|begin_of_text|>) skipped.
class TokenizerLosslessRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerLosslessRoundTrip, EveryDocumentDecodesToItsText) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer(GetParam());
  size_t total = 0, ok = 0;
  for (const auto& doc : tokt::doc_files()) {
    for (size_t n = 0; n < doc.texts.size(); ++n) {
      const std::string& text = doc.texts[n];
      ++total;
      if (tok.decode(tok.encode(text), /*skip_special_tokens=*/true) == text && tok.decode(tok.encode(text, false)) == text) ++ok;
      else ADD_FAILURE() << GetParam() << " " << doc.path << " doc " << n << " does not round-trip";
    }
  }
  std::cout << "[ round-trip ] " << GetParam() << ": " << ok << "/" << total << " documents\n";
  EXPECT_EQ(ok, total);
}

INSTANTIATE_TEST_SUITE_P(Shared, TokenizerLosslessRoundTrip, ::testing::Values("gpt2", "llama3", "mistral", "gemma3"),
                         [](const auto& info) { return info.param; });

// The SentencePiece decoders on cases worked out from HF's rules: byte runs that are UTF-8 become their text,
// a run that is not becomes one U+FFFD per byte, "▁" becomes a space and Mistral strips one leading space.
TEST(TokenizerSentencePieceDecode, ByteFallbackFuseAndStrip) {
  const fme::Tokenizer& mistral = tokt::shared_tokenizer("mistral");
  auto id = [&](const char* t) {
    const int32_t i = mistral.token_to_id(t);
    EXPECT_GE(i, 0) << t;
    return i;
  };
  // "é" as bytes C3 A9; "▁a" a vocabulary piece.
  EXPECT_EQ(mistral.decode({id("\xE2\x96\x81" "a"), id("<0xC3>"), id("<0xA9>")}), "a\xC3\xA9");
  EXPECT_EQ(mistral.decode({id("\xE2\x96\x81" "a"), id("<0xC3>"), id("\xE2\x96\x81" "a")}), "a\xEF\xBF\xBD a");
  EXPECT_EQ(mistral.decode({id("<0xFF>"), id("<0xFE>")}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Characters outside the vocabulary are encoded as their UTF-8 bytes and come back whole.
  const std::string rare = "\xF0\x9F\xA6\x80 crab";
  EXPECT_EQ(mistral.decode(mistral.encode(rare, false)), rare);
}

TEST(TokenizerQwenDecode, PromptsRoundTripWithSpecialTokens) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("qwen2.5");
  for (const auto& p : tokt::read_jsonl(tokt::data_dir() + "/prompts/expected_prompts.jsonl")) {
    std::string prompt = p.at("prompt").get<std::string>();
    EXPECT_EQ(tok.decode(p.at("qwen2_5_ids").get<std::vector<int32_t>>()), nfc(prompt));
  }
}

TEST(TokenizerQwenDecode, TextThatIsNotNfcDecodesToItsNfcForm) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("qwen2.5");
  std::string decomposed = "Cafe\xCC\x81 A\xCC\x8A";  // e + U+0301, A + U+030A
  ASSERT_NE(nfc(decomposed), decomposed);
  EXPECT_EQ(tok.decode(tok.encode(decomposed)), "Caf\xC3\xA9 \xC3\x85");
}

TEST(TokenizerQwenDecode, SkipSpecialTokensDropsOnlySpecialOnes) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("qwen2.5");
  std::string text = "<|im_start|>user\nhi <tool_call><|im_end|>";
  auto ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids, false), text);
  // <|im_start|> and <|im_end|> are special; <tool_call> is an added token that is not special.
  EXPECT_EQ(tok.decode(ids, true), "user\nhi <tool_call>");
}

TEST(TokenizerQwenDecode, SplitMultibyteCharacterBecomesReplacement) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("qwen2.5");
  // Byte-level tokens of the 3 bytes of U+20AC; the first token alone is an incomplete sequence.
  int32_t b0 = tok.token_to_id("\xC3\xA2");  // byte 0xE2
  ASSERT_GE(b0, 0);
  EXPECT_EQ(tok.decode({b0}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok.decode(tok.encode("\xE2\x82\xAC")), "\xE2\x82\xAC");
}

TEST(TokenizerQwenDecode, UnknownIdsAreSkipped) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("qwen2.5");
  auto ids = tok.encode("abc");
  std::vector<int32_t> with_bad = ids;
  with_bad.insert(with_bad.begin(), 99999999);
  with_bad.push_back(-5);
  EXPECT_EQ(tok.decode(with_bad), "abc");
}

// BERT: the WordPiece decoder strips "##" from continuation tokens, puts a space before every other token
// but the first, and applies HF's cleanup (" ." -> ".", " ," -> ",", ...) to each token.
std::vector<int32_t> bert_ids(const std::vector<std::string>& tokens) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("bert-base-uncased");
  std::vector<int32_t> ids;
  for (const auto& t : tokens) {
    int32_t id = tok.token_to_id(t);
    EXPECT_GE(id, 0) << t;
    ids.push_back(id);
  }
  return ids;
}

TEST(TokenizerBertDecode, JoinsWordsAndContinuations) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("bert-base-uncased");
  EXPECT_EQ(tok.decode(bert_ids({"un", "##able", "to"})), "unable to");
  EXPECT_EQ(tok.decode(bert_ids({"[CLS]", "hello", ",", "world", "!", "[SEP]"})), "[CLS] hello, world! [SEP]");
  EXPECT_EQ(tok.decode(bert_ids({"[CLS]", "hello", ",", "world", "!", "[SEP]"}), true), "hello, world!");
  EXPECT_EQ(tok.decode(bert_ids({"what", "?", "yes", "."})), "what? yes.");
}

TEST(TokenizerBertDecode, CleanupWorksTokenByToken) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("bert-base-uncased");
  // " ' " never occurs inside one token (" '" has no trailing space), so HF leaves the apostrophe spaced.
  EXPECT_EQ(tok.decode(bert_ids({"don", "'", "t"})), "don ' t");
  // " do not" -> " don't" needs both words in one token, which never happens.
  EXPECT_EQ(tok.decode(bert_ids({"i", "do", "not"})), "i do not");
}

TEST(TokenizerBertDecode, EncodeThenDecodeGivesNormalizedText) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("bert-base-uncased");
  EXPECT_EQ(tok.decode(tok.encode("Hello, World! Café?")), "[CLS] hello, world! cafe? [SEP]");
  EXPECT_EQ(tok.decode(tok.encode("Hello, World!"), true), "hello, world!");
}

}  // namespace
