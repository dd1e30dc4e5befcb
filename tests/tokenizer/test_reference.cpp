// Exact ids against Hugging Face's own tokenizers library (Rust, 0.23.2) on the shared documents, for every
// document and every shared tokenizer, and on the 30 arc24 chat prompts (special tokens in the text).
#include <iostream>
#include <sstream>

#include "test_helpers.h"

namespace {

// Where two id lists first differ, with the tokens around it, for a readable failure.
std::string first_difference(const fme::Tokenizer& tok, const std::vector<int32_t>& want, const std::vector<int32_t>& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  std::ostringstream os;
  os << "lengths " << want.size() << " (HF) vs " << got.size() << " (fme); first difference at " << i << "\n  HF : ";
  size_t from = i >= 3 ? i - 3 : 0;
  for (size_t k = from; k < std::min(want.size(), i + 4); ++k) os << want[k] << "'" << tok.id_to_token(want[k]) << "' ";
  os << "\n  fme: ";
  for (size_t k = from; k < std::min(got.size(), i + 4); ++k) os << got[k] << "'" << tok.id_to_token(got[k]) << "' ";
  return os.str();
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

class TokenizerReferenceIds : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerReferenceIds, EveryDocumentMatchesHf) {
  const std::string name = GetParam();
  const fme::Tokenizer& tok = tokt::shared_tokenizer(name);
  size_t total = 0, matched = 0;
  ASSERT_FALSE(tokt::doc_files().empty());
  for (const auto& doc : tokt::doc_files()) {
    auto ref = tokt::reference_ids(doc, name);
    // Every document of the file has its reference ids.
    ASSERT_EQ(ref.size(), doc.texts.size()) << doc.path;
    for (const auto& [n, want] : ref) {
      ASSERT_LT(static_cast<size_t>(n), doc.texts.size()) << doc.path;
      std::vector<int32_t> got = tok.encode(doc.texts[n], true);
      ++total;
      if (got == want) ++matched;
      else ADD_FAILURE() << name << " " << doc.path << " doc " << n << ": " << first_difference(tok, want, got);
    }
  }
  std::cout << "[ reference ] " << name << ": " << matched << "/" << total << " documents identical to HF\n";
  EXPECT_EQ(matched, total);
  EXPECT_GE(total, 220u);  // 2 x 100 FineWeb + 2 x 10 Common Crawl documents
}

INSTANTIATE_TEST_SUITE_P(Shared, TokenizerReferenceIds, ::testing::Values("qwen2.5", "qwen3", "bert-base-uncased", "gpt2", "llama3", "mistral", "gemma3"), test_name);

// BERT's template is [CLS] A [SEP]; without special tokens only A remains.
TEST(TokenizerReferenceIds, BertWithoutSpecialTokensDropsClsAndSep) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("bert-base-uncased");
  const auto& doc = tokt::doc_files().front();
  auto ref = tokt::reference_ids(doc, "bert-base-uncased");
  for (int n : {0, 1, 2}) {
    const auto& want = ref.at(n);
    ASSERT_GE(want.size(), 2u);
    std::vector<int32_t> inner(want.begin() + 1, want.end() - 1);
    EXPECT_EQ(tok.encode(doc.texts[static_cast<size_t>(n)], false), inner) << "doc " << n;
  }
}

// Qwen's post-processor adds nothing: with and without special tokens the ids are the same.
TEST(TokenizerReferenceIds, QwenAddsNoSpecialTokens) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("qwen2.5");
  const auto& doc = tokt::doc_files().front();
  auto ref = tokt::reference_ids(doc, "qwen2.5");
  EXPECT_EQ(tok.encode(doc.texts[0], false), ref.at(0));
}

TEST(TokenizerReferenceIds, ChatPromptsMatchHfQwen25) {
  const fme::Tokenizer& tok = tokt::shared_tokenizer("qwen2.5");
  auto prompts = tokt::read_jsonl(tokt::data_dir() + "/prompts/expected_prompts.jsonl");
  ASSERT_EQ(prompts.size(), 30u);
  size_t matched = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::string prompt = prompts[i].at("prompt").get<std::string>();
    auto want = prompts[i].at("qwen2_5_ids").get<std::vector<int32_t>>();
    auto got = tok.encode(prompt, true);
    if (got == want) ++matched;
    else ADD_FAILURE() << "prompt " << i << ": " << first_difference(tok, want, got);
  }
  std::cout << "[ reference ] qwen2.5 prompts: " << matched << "/" << prompts.size() << " identical to HF\n";
  EXPECT_EQ(matched, prompts.size());
}

}  // namespace
