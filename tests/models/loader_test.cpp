// Strict checkpoint loading: every missing, unexpected or mis-shaped tensor is an error naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "models/loader.h"
#include "models/tensor_io.h"
#include "test_util.h"
#include "util/error.h"
#include "util/file.h"

namespace fs = std::filesystem;

namespace fme {
namespace {

// A scratch model dir: the tiny model's config and an edited copy of its weights.
class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fme-loader-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Copies `model`'s config and writes its tensors after `edit` changed them.
  template <class Edit>
  std::string make(const std::string& model, Edit edit) {
    const std::string src = test::shared("models/" + model);
    fs::copy_file(src + "/config.json", dir_ / "config.json");
    auto t = read_safetensors(src + "/model.safetensors");
    std::vector<std::pair<std::string, at::Tensor>> v(t.begin(), t.end());
    edit(v);
    write_safetensors((dir_ / "model.safetensors").string(), v);
    return dir_.string();
  }

  std::string load_error(const std::string& dir) {
    try {
      load_model(dir, at::kFloat);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(LoaderTest, MissingTensorIsNamed) {
  auto dir = make("qwen2-tiny", [](auto& v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; }), v.end());
  });
  std::string err = load_error(dir);
  EXPECT_NE(err.find("lacks tensor 'model.layers.1.mlp.up_proj.weight'"), std::string::npos) << err;
}

TEST_F(LoaderTest, UnexpectedTensorIsNamed) {
  auto dir = make("qwen2-tiny", [](auto& v) { v.emplace_back("model.layers.9.extra.weight", at::zeros({2})); });
  std::string err = load_error(dir);
  EXPECT_NE(err.find("unexpected tensor 'model.layers.9.extra.weight'"), std::string::npos) << err;
}

TEST_F(LoaderTest, WrongShapeSaysExpectedAndGot) {
  auto dir = make("bert-tiny", [](auto& v) {
    for (auto& p : v)
      if (p.first == "encoder.layer.0.attention.self.key.weight") p.second = at::zeros({64, 32});
  });
  std::string err = load_error(dir);
  EXPECT_NE(err.find("tensor 'encoder.layer.0.attention.self.key.weight' has wrong shape; expected [64, 64], got [64, 32]"),
            std::string::npos)
      << err;
}

TEST_F(LoaderTest, BertForMaskedLMPrefixAndHeadsAreAcceptedAndReported) {
  auto dir = make("bert-tiny", [](auto& v) {
    for (auto& p : v) p.first = "bert." + p.first;
    v.emplace_back("cls.predictions.bias", at::zeros({30522}));
  });
  LoadReport r;
  auto model = load_model(dir, at::kFloat, &r);
  EXPECT_EQ(r.loaded, model->named_parameters().size());
  ASSERT_EQ(r.ignored.size(), 1u);
  EXPECT_EQ(r.ignored[0], "cls.predictions.bias");
}

TEST_F(LoaderTest, TiedLmHeadMustEqualTheEmbedding) {
  auto same = make("qwen2-tiny", [](auto& v) {
    for (auto& p : v)
      if (p.first == "model.embed_tokens.weight") {
        v.emplace_back("lm_head.weight", p.second.clone());
        break;
      }
  });
  EXPECT_NO_THROW(load_model(same, at::kFloat));
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  auto differs = make("qwen2-tiny", [](auto& v) { v.emplace_back("lm_head.weight", at::zeros({512, 64})); });
  EXPECT_NE(load_error(differs).find("'lm_head.weight' differs from 'model.embed_tokens.weight'"), std::string::npos);
}

TEST_F(LoaderTest, ParameterPathsAreTheHuggingFaceNames) {
  auto model = load_model(test::shared("models/qwen2-tiny"), at::kFloat);
  auto file = read_safetensors(test::shared("models/qwen2-tiny/model.safetensors"));
  std::set<std::string> ours, theirs;
  for (auto& [n, p] : model->named_parameters()) ours.insert(n);
  for (auto& [n, t] : file) theirs.insert(n);
  EXPECT_EQ(ours, theirs);
}

}  // namespace
}  // namespace fme

namespace fme {
namespace {

// GPT-2 as the original OpenAI conversion stores it: no "transformer." prefix, plus the causal-mask buffers.
TEST_F(LoaderTest, Gpt2WithoutTheTransformerPrefixAndWithMaskBuffersLoads) {
  const std::string dir = make("gpt2-tiny", [](std::vector<std::pair<std::string, at::Tensor>>& v) {
    for (auto& [name, t] : v)
      if (name.rfind("transformer.", 0) == 0) name = name.substr(12);
    v.emplace_back("h.0.attn.bias", at::ones({1, 1, 64, 64}).tril());
    v.emplace_back("h.1.attn.masked_bias", at::full({}, -1e4));
  });
  LoadReport r;
  auto model = load_model(dir, at::kFloat, &r);
  EXPECT_EQ(r.loaded, model->named_parameters().size());
  EXPECT_EQ(std::count(r.ignored.begin(), r.ignored.end(), "h.0.attn.bias"), 1);
  auto golden = read_safetensors(test::shared("models/gpt2-tiny/golden.safetensors"));
  const at::Tensor last = test::capture_points(*model, test::golden_batch(golden), {"ln_final.hook_normalized"}).at("ln_final.hook_normalized");
  EXPECT_LE(test::max_abs_err_real(last, golden.at("final"), golden.at("attention_mask")), 1e-4);
  // A sequence past n_positions (64) is an error, not an out-of-range position lookup.
  at::Tensor ids = at::zeros({1, 65}, at::kLong);
  EXPECT_THROW(model->forward(Batch{ids, at::ones_like(ids), {}}, Capture()), ShapeError);
}

}  // namespace
}  // namespace fme
