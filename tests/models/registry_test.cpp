// The architecture registry: every model_type config.json parsing accepts has exactly one row, unknown ones
// are one clear error listing the supported, and each row's FLOP count follows its block's weights.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "models/architecture.h"
#include "models/loader.h"
#include "test_util.h"
#include "util/error.h"

namespace fme {
namespace {

std::set<std::string> split_list(const std::string& s) {
  std::set<std::string> out;
  std::stringstream in(s);
  for (std::string t; std::getline(in, t, ',');) out.insert(t.substr(t.find_first_not_of(' ')));
  return out;
}

TEST(Registry, EveryParsedModelTypeHasOneRow) {
  std::set<std::string> registered;
  for (const Architecture* a : architectures())
    for (const auto& t : a->model_types) EXPECT_TRUE(registered.insert(t).second) << t << " registered twice";
  EXPECT_EQ(registered, split_list(supported_model_types()));
  for (const auto& t : registered) EXPECT_EQ(&architecture_for(t), &architecture_for(t));
  try {
    architecture_for("t5");
    ADD_FAILURE() << "no error for an unknown model_type";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'t5'"), std::string::npos) << m;
    for (const auto& t : registered) EXPECT_NE(m.find(t), std::string::npos) << m;
  }
}

TEST(Registry, EachTinyModelIsBuiltByItsFamily) {
  for (const char* name : {"qwen2-tiny", "llama-tiny", "qwen3-tiny", "gemma2-tiny", "gpt2-tiny", "bert-tiny"}) {
    auto model = load_model(test::shared(std::string("models/") + name), at::kFloat);
    const Architecture& a = architecture_for(model->config());
    EXPECT_NE(std::find(a.model_types.begin(), a.model_types.end(), model->model_type()), a.model_types.end()) << name;
    // FLOPs grow linearly in the blocks run.
    const double one = a.flops(model->config(), 2, 16, 0), all = a.flops(model->config(), 2, 16, -1);
    EXPECT_GT(one, 0) << name;
    EXPECT_DOUBLE_EQ(all, one * model->num_layers()) << name;
  }
}

TEST(Registry, DecoderFlopsCountEveryWeightAndTheCausalScores) {
  auto model = load_model(test::shared("models/qwen2-tiny"), at::kFloat);
  const auto& c = std::get<DecoderConfig>(model->config());
  // Per token and block: 2 x (q, k, v, o, gate, up, down weights) + 4 x heads x hd x visible keys.
  double weights = 0;
  for (const auto& [name, p] : model->named_parameters())
    if (name.rfind("model.layers.0.", 0) == 0 && p.dim() == 2) weights += double(p.numel());
  const int64_t T = 10;
  const double per_token = 2 * weights + 4.0 * c.num_attention_heads * c.head_dim() * (T + 1) / 2.0;
  EXPECT_DOUBLE_EQ(architecture_for(model->config()).flops(model->config(), 3, T, 0), 3.0 * T * per_token);
}

}  // namespace
}  // namespace fme
