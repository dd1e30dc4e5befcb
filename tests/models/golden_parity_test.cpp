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

std::map<std::string, at::Tensor> run(Model& model, const std::map<std::string, at::Tensor>& golden, ForwardOptions opts = {}) {
  Batch b;
  b.input_ids = golden.at("input_ids");
  b.attention_mask = golden.at("attention_mask");
  if (golden.count("token_type_ids")) b.token_type_ids = golden.at("token_type_ids");
  std::map<std::string, at::Tensor> out;
  opts.capture = [&](const std::string& n, const at::Tensor& x) { out[n] = x.to(at::kFloat).clone(); };
  model.forward(b, opts);
  return out;
}

TEST_P(GoldenParity, EveryCapturePointMatchesHF) {
  const Case c = GetParam();
  const std::string dir = test::shared(std::string("models/") + c.model);
  auto golden = read_safetensors(dir + "/golden.safetensors");
  const at::Tensor mask = golden.at("attention_mask");
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    auto model = load_model(dir, dtype);
    auto out = run(*model, golden);
    size_t compared = 0;
    for (const auto& [name, ref] : golden) {
      if (name == "input_ids" || name == "attention_mask" || name == "token_type_ids") continue;
      ASSERT_TRUE(out.count(name)) << c.model << ": fme produced no '" << name << "'";
      double err = ref.dim() == 3 ? test::max_abs_err_real(out[name], ref, mask)
                                  : (out[name] - ref).abs().max().item<double>();  // pooler_output [B,H]
      // bf16 keeps 8 bits of mantissa: its bound scales with the activations' size (Gemma's reach ~20).
      const double tol = dtype == at::kFloat ? c.fp32_tol : c.bf16_tol * std::max(1.0, ref.abs().max().item<double>());
      EXPECT_LE(err, tol) << c.model << " " << c10::toString(dtype) << " '" << name << "' max abs error " << err;
      std::cout << "[parity] " << c.model << " " << c10::toString(dtype) << " " << name << " max_abs_err " << err << "\n";
      ++compared;
    }
    EXPECT_EQ(compared, out.size()) << "fme produced capture points the golden file lacks";
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

TEST(GoldenParity, StoppingEarlyRunsOnlyTheRequestedBlocks) {
  const std::string dir = test::shared("models/qwen2-tiny");
  auto golden = read_safetensors(dir + "/golden.safetensors");
  auto model = load_model(dir, at::kFloat);
  ForwardOptions opts;
  opts.last_block = 1;
  auto out = run(*model, golden, opts);
  EXPECT_EQ(out.count("resid_post.2"), 0u);
  EXPECT_EQ(out.count("final"), 0u);
  ASSERT_EQ(out.count("resid_post.1"), 1u);
  EXPECT_LE(test::max_abs_err_real(out["resid_post.1"], golden.at("resid_post.1"), golden.at("attention_mask")), 1e-4);
}

}  // namespace
}  // namespace fme
