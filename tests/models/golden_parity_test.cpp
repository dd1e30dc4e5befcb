// Forward parity with Hugging Face transformers' own modeling code: ../shared/data/models/*/golden.safetensors
// were made by HF (fp32, eager attention) from the same weights and inputs.
#include <gtest/gtest.h>

#include "models/loader.h"
#include "models/tensor_io.h"
#include "test_util.h"

namespace fme {
namespace {

struct Case {
  const char* model;
  double fp32_tol, bf16_tol;  // bf16: relative to max |reference| where that exceeds 1
};

class GoldenParity : public ::testing::TestWithParam<Case> {};

// golden.safetensors holds HF's hidden states (embeddings, resid_post.{i}, final, BERT's pooler_output): each
// is compared with the hook point it is (test::hook_for_golden), in fp32 and bf16.
TEST_P(GoldenParity, EveryHiddenStateMatchesHF) {
  const Case c = GetParam();
  const std::string dir = test::shared(std::string("models/") + c.model);
  auto golden = read_safetensors(dir + "/golden.safetensors");
  const at::Tensor mask = golden.at("attention_mask");
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    auto model = load_model(dir, dtype);
    auto out = test::capture_points(*model, test::golden_batch(golden));
    for (const auto& [golden_name, ref] : golden) {
      if (golden_name == "input_ids" || golden_name == "attention_mask" || golden_name == "token_type_ids") continue;
      const std::string name = test::hook_for_golden(*model, golden_name);
      ASSERT_TRUE(out.count(name)) << c.model << ": fme produced no '" << name << "'";
      double err = ref.dim() == 3 ? test::max_abs_err_real(out[name], ref, mask)
                                  : (out[name] - ref).abs().max().item<double>();  // pooler_output [B,H]
      // bf16 keeps 8 bits of mantissa: its bound scales with the activations' size (Gemma's reach ~20).
      const double tol = dtype == at::kFloat ? c.fp32_tol : c.bf16_tol * std::max(1.0, ref.abs().max().item<double>());
      EXPECT_LE(err, tol) << c.model << " " << c10::toString(dtype) << " '" << name << "' max abs error " << err;
      std::cout << "[parity] " << c.model << " " << c10::toString(dtype) << " " << golden_name << " max_abs_err " << err << "\n";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenParity,
                         ::testing::Values(Case{"qwen2-tiny", 1e-4, 0.1}, Case{"bert-tiny", 1e-4, 0.1},
                                           Case{"llama-tiny", 1e-4, 0.1}, Case{"qwen3-tiny", 1e-4, 0.1},
                                           Case{"gemma2-tiny", 1e-4, 0.05}, Case{"gpt2-tiny", 1e-4, 0.1}),
                         [](const auto& info) {
                           std::string n = info.param.model;
                           return n.substr(0, n.find('-'));
                         });

TEST(GoldenParity, OnlyTheRequestedPointsAreReported) {
  const std::string dir = test::shared("models/qwen2-tiny");
  auto golden = read_safetensors(dir + "/golden.safetensors");
  auto model = load_model(dir, at::kFloat);
  auto out = test::capture_points(*model, test::golden_batch(golden), {"blocks.1.hook_resid_post"});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out.count("blocks.1.hook_resid_post"), 1u);
  EXPECT_LE(test::max_abs_err_real(out["blocks.1.hook_resid_post"], golden.at("resid_post.1"), golden.at("attention_mask")), 1e-4);
}

}  // namespace
}  // namespace fme
