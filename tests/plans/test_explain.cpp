// Tests of plans/explain: the --explain text table (aligned columns, matches, params, warnings) and its
// JSON twin.
#include <gtest/gtest.h>

#include <sstream>

#include "plans/explain.h"
#include "plans_test_helpers.h"

namespace fme::plans {
namespace {

PlanTable bert_tp_lora() {
  auto plans = load_plans("builtin:bert-tp");
  for (auto& p : parse_plans("plan adapters\n*.attention.self.query lora(r=8, alpha=16)\n*.q_proj freeze\n", "t"))
    plans.push_back(p);
  return resolve(testing::bert_modules(1), plans, testing::mesh_tp(2));
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

TEST(ExplainText, AlignedRowsWithRulesAndParams) {
  std::string text = explain_text(bert_tp_lora());
  auto lines = lines_of(text);
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines[0], "mesh: tp=2 (2 ranks; LOCAL is the same on every rank)");
  EXPECT_EQ(lines[1], "plans, in order: tp, adapters");
  const std::string& header = lines[2];
  EXPECT_EQ(header.rfind("MODULE", 0), 0u);
  size_t spec_col = header.find("SPEC"), local_col = header.find("LOCAL"), rule_col = header.find("RULE");
  ASSERT_NE(spec_col, std::string::npos);

  // The query module: 4 lines (weight, bias, lora_A, lora_B), two rule lines (tp, adapters).
  size_t q = 0;
  while (q < lines.size() && lines[q].rfind("encoder.layer.0.attention.self.query ", 0) != 0) ++q;
  ASSERT_LT(q + 3, lines.size()) << text;
  EXPECT_EQ(lines[q].substr(rule_col, 50).rfind("tp:6 *.attention.self.query -> colwise(tp)", 0), 0u) << lines[q];
  EXPECT_EQ(lines[q].substr(spec_col).rfind("P('tp', None)", 0), 0u) << lines[q];
  EXPECT_EQ(lines[q].substr(local_col).rfind("[384, 768]", 0), 0u) << lines[q];
  EXPECT_NE(lines[q].find("  no"), std::string::npos);  // the base is frozen by LoRA
  EXPECT_EQ(lines[q + 1].substr(rule_col).rfind("adapters:2 *.attention.self.query -> lora(r=8, alpha=16)", 0), 0u)
      << lines[q + 1];
  EXPECT_EQ(lines[q + 1].substr(spec_col).rfind("P('tp')", 0), 0u);
  EXPECT_NE(lines[q + 2].find("lora_A (added)"), std::string::npos);
  EXPECT_EQ(lines[q + 3].substr(spec_col).rfind("P('tp', None)", 0), 0u) << lines[q + 3];  // lora_B
  EXPECT_EQ(lines[q + 3].substr(local_col).rfind("[384, 8]", 0), 0u);
  EXPECT_NE(lines[q + 3].find("yes"), std::string::npos);

  // An untouched LayerNorm shows "-" for its rule.
  size_t ln = 0;
  while (ln < lines.size() && lines[ln].rfind("embeddings.LayerNorm ", 0) != 0) ++ln;
  ASSERT_LT(ln, lines.size());
  EXPECT_EQ(lines[ln].substr(rule_col, 2), "- ");

  EXPECT_NE(text.find("13 modules (6 transformed), 25 parameters (23 trainable, 2 added by LoRA)\n"), std::string::npos) << text;
  EXPECT_EQ(lines.back(), "warning: plan 'adapters' line 3: pattern '*.q_proj' matched no module");
}

TEST(ExplainText, OnlyTransformedListsMatchedModules) {
  std::string text = explain_text(bert_tp_lora(), ExplainOptions{true});
  EXPECT_EQ(text.find("embeddings.LayerNorm"), std::string::npos);
  EXPECT_NE(text.find("encoder.layer.0.output.dense"), std::string::npos);
  EXPECT_NE(text.find("6 listed"), std::string::npos);
}

TEST(ExplainJson, SameContentAsTable) {
  Json j = explain_json(bert_tp_lora());
  EXPECT_EQ(j["mesh"], Json::parse(R"J([{"name": "tp", "size": 2}])J"));
  EXPECT_EQ(j["plans"], Json::parse(R"J(["tp", "adapters"])J"));
  ASSERT_EQ(j["modules"].size(), 13u);
  const Json* q = nullptr;
  for (const auto& m : j["modules"])
    if (m["path"] == "encoder.layer.0.attention.self.query") q = &m;
  ASSERT_NE(q, nullptr);
  EXPECT_EQ((*q)["type"], "Linear");
  ASSERT_EQ((*q)["matches"].size(), 2u);
  EXPECT_EQ((*q)["matches"][0], Json::parse(R"J({"plan": "tp", "line": 6, "pattern": "*.attention.self.query", "transform": "colwise(tp)"})J"));
  EXPECT_EQ((*q)["matches"][1]["transform"], "lora(r=8, alpha=16)");
  ASSERT_EQ((*q)["params"].size(), 4u);
  EXPECT_EQ((*q)["params"][0], Json::parse(R"J({"name": "encoder.layer.0.attention.self.query.weight", "spec": ["tp", null],
      "global_shape": [768, 768], "local_shape": [384, 768], "dtype": "fp32", "trainable": false, "added_by_lora": false,
      "fused_parts": 1})J"));
  EXPECT_EQ((*q)["params"][3]["name"], "encoder.layer.0.attention.self.query.lora_B");
  EXPECT_EQ((*q)["params"][3]["added_by_lora"], true);
  EXPECT_EQ(j["unmatched"].size(), 1u);
  EXPECT_EQ(explain_json(bert_tp_lora(), ExplainOptions{true})["modules"].size(), 6u);
}

}  // namespace
}  // namespace fme::plans
