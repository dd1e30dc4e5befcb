// Tests of plans/plan: the line format, its canonical transform text, the built-in plans, and every
// parse error's file:line:col message.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "plans/plan.h"
#include "util/error.h"

namespace fme::plans {
namespace {

// Runs parse_plans on `text` expecting a ConfigError; returns its message.
std::string parse_error(const std::string& text) {
  try {
    parse_plans(text, "p.plan");
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return "";
}

TEST(PlanParse, ReadsPlansRulesAndComments) {
  auto plans = parse_plans(
      "# the seed's BERT tensor-parallel plan\n"
      "plan tp\n"
      "*.attention.self.query   colwise(tp)   # q\n"
      "\n"
      "*.output.dense\trowwise( tp )\r\n"
      "plan adapters\n"
      "  *.attention.self.query lora(r=8, alpha=16)\n"
      "encoder.layer.0.*        freeze\n"
      "*.LayerNorm unfreeze()\n"
      "pooler.* cast(bf16)\n"
      "*.key lora(4, 0.5)\n",
      "p.plan");
  ASSERT_EQ(plans.size(), 2u);
  EXPECT_EQ(plans[0].name, "tp");
  EXPECT_EQ(plans[0].line, 2);
  EXPECT_EQ(plans[0].source, "p.plan");
  ASSERT_EQ(plans[0].rules.size(), 2u);
  EXPECT_EQ(plans[0].rules[0].pattern, "*.attention.self.query");
  EXPECT_EQ(plans[0].rules[0].line, 3);
  EXPECT_EQ(plans[0].rules[0].column, 1);
  EXPECT_EQ(plans[0].rules[0].transform.kind, TransformKind::Colwise);
  EXPECT_EQ(plans[0].rules[0].transform.axis, "tp");
  EXPECT_EQ(plans[0].rules[1].transform.to_string(), "rowwise(tp)");
  EXPECT_EQ(plans[0].rules[1].line, 5);

  ASSERT_EQ(plans[1].rules.size(), 5u);
  const auto& lora = plans[1].rules[0];
  EXPECT_EQ(lora.column, 3);
  EXPECT_EQ(lora.transform.kind, TransformKind::Lora);
  EXPECT_EQ(lora.transform.r, 8);
  EXPECT_DOUBLE_EQ(lora.transform.alpha, 16);
  EXPECT_EQ(lora.transform.to_string(), "lora(r=8, alpha=16)");
  EXPECT_EQ(plans[1].rules[1].transform.to_string(), "freeze");
  EXPECT_EQ(plans[1].rules[2].transform.kind, TransformKind::Unfreeze);
  EXPECT_EQ(plans[1].rules[3].transform.dtype, "bf16");
  EXPECT_EQ(plans[1].rules[4].transform.to_string(), "lora(r=4, alpha=0.5)");
}

TEST(PlanParse, KeywordArgumentsInAnyOrder) {
  auto plans = parse_plans("plan a\nx lora(alpha=32, r=16)\ny colwise(axis=dp)\nz cast(dtype=fp16)\n", "p");
  EXPECT_EQ(plans[0].rules[0].transform.r, 16);
  EXPECT_DOUBLE_EQ(plans[0].rules[0].transform.alpha, 32);
  EXPECT_EQ(plans[0].rules[1].transform.axis, "dp");
  EXPECT_EQ(plans[0].rules[2].transform.dtype, "fp16");
}

TEST(PlanParse, UnknownTransformNamesLineColumnAndKnownOnes) {
  std::string msg = parse_error("plan tp\n*.attention.self.query   colwize(tp)\n");
  EXPECT_EQ(msg, "p.plan:2:26: unknown transform 'colwize'; known transforms: colwise, rowwise, lora, freeze, unfreeze, cast");
}

TEST(PlanParse, RuleBeforeAnyPlan) {
  std::string msg = parse_error("# header\n  *.query colwise(tp)\n");
  EXPECT_NE(msg.find("p.plan:2:3: rule '*.query' comes before any 'plan <name>' line"), std::string::npos) << msg;
}

TEST(PlanParse, DuplicatePlanName) {
  std::string msg = parse_error("plan tp\na freeze\nplan tp\nb freeze\n");
  EXPECT_EQ(msg, "p.plan:3:6: duplicate plan name 'tp' (first defined at line 1)");
}

TEST(PlanParse, MissingParentheses) {
  EXPECT_NE(parse_error("plan a\nx colwise(tp\n").find("p.plan:2:13: missing ')' to close the '(' at column 10"),
            std::string::npos);
  EXPECT_NE(parse_error("plan a\nx colwise\n").find("p.plan:2:10: missing '(': colwise needs a mesh axis"),
            std::string::npos);
  EXPECT_NE(parse_error("plan a\nx colwise tp\n").find("p.plan:2:11: expected '(' after 'colwise', found 'tp'"),
            std::string::npos);
  EXPECT_NE(parse_error("plan a\nx lora(r=8, alpha=16\n").find("missing ')'"), std::string::npos);
  EXPECT_NE(parse_error("plan a\nx cast(bf16))\n").find("p.plan:2:13: unexpected text after the transform: ')'"),
            std::string::npos);
}

TEST(PlanParse, BadNumbersAndRanges) {
  EXPECT_EQ(parse_error("plan a\nx lora(r=eight, alpha=16)\n"),
            "p.plan:2:10: bad number 'eight' for r: expected an integer");
  EXPECT_EQ(parse_error("plan a\nx lora(r=8, alpha=1x)\n"),
            "p.plan:2:19: bad number '1x' for alpha: expected a number such as 16 or 0.5");
  EXPECT_EQ(parse_error("plan a\nx lora(r=0, alpha=16)\n"), "p.plan:2:10: lora r must be > 0, got 0");
  EXPECT_EQ(parse_error("plan a\nx lora(r=-2, alpha=16)\n"), "p.plan:2:10: lora r must be > 0, got -2");
  EXPECT_EQ(parse_error("plan a\nx lora(r=8, alpha=0)\n"), "p.plan:2:19: lora alpha must be > 0, got 0");
  EXPECT_EQ(parse_error("plan a\nx lora(r=8, alpha=-1.5)\n"), "p.plan:2:19: lora alpha must be > 0, got -1.5");
  EXPECT_NE(parse_error("plan a\nx lora(r=8)\n").find("lora is missing argument 'alpha'"), std::string::npos);
  EXPECT_NE(parse_error("plan a\nx lora(alpha=8)\n").find("lora is missing argument 'r'"), std::string::npos);
  EXPECT_NE(parse_error("plan a\nx lora(r=8, r=4, alpha=1)\n").find("2:13: argument 'r' given twice"), std::string::npos);
  EXPECT_NE(parse_error("plan a\nx lora(r=8, beta=1)\n").find("2:13: unknown argument 'beta' for lora"), std::string::npos);
}

TEST(PlanParse, ArgumentCountsAndValues) {
  EXPECT_EQ(parse_error("plan a\nx cast(int8)\n"), "p.plan:2:8: unknown dtype 'int8'; known dtypes: fp32, bf16, fp16");
  EXPECT_NE(parse_error("plan a\nx colwise()\n").find("colwise takes exactly one argument (a mesh axis), found 0"),
            std::string::npos);
  EXPECT_NE(parse_error("plan a\nx rowwise(tp, dp)\n").find("found 2"), std::string::npos);
  EXPECT_NE(parse_error("plan a\nx freeze(all)\n").find("freeze takes no arguments"), std::string::npos);
  EXPECT_NE(parse_error("plan a\nx colwise(t-p)\n").find("2:11: bad mesh axis name 't-p'"), std::string::npos);
  EXPECT_NE(parse_error("plan a\nx lora(r=, alpha=1)\n").find("expected a value for argument 'r'"), std::string::npos);
}

TEST(PlanParse, MissingTransformAndEmptyPlan) {
  EXPECT_EQ(parse_error("plan a\n*.query   # nothing\n"),
            "p.plan:2:8: expected a transform after pattern '*.query' (one of: colwise, rowwise, lora, freeze, unfreeze, cast)");
  EXPECT_EQ(parse_error("plan a\nplan b\nx freeze\n"), "p.plan:1:6: plan 'a' has no rules");
  EXPECT_EQ(parse_error("plan a\nx freeze\nplan b\n"), "p.plan:3:6: plan 'b' has no rules");
  EXPECT_NE(parse_error("plan\n").find("p.plan:1:5: expected a plan name after 'plan'"), std::string::npos);
  EXPECT_NE(parse_error("plan a b\n").find("p.plan:1:8: unexpected text after the plan name: 'b'"), std::string::npos);
}

TEST(PlanParse, RepeatedPatternInOnePlanIsDeadAndRejected) {
  EXPECT_NE(parse_error("plan a\n*.q colwise(tp)\n*.q rowwise(tp)\n").find("p.plan:3:1: pattern '*.q' already has a rule at line 2"),
            std::string::npos);
  // The same pattern in two plans is fine: each plan applies on its own.
  EXPECT_NO_THROW(parse_plans("plan a\n*.q colwise(tp)\nplan b\n*.q freeze\n", "p"));
}

TEST(PlanParse, EmptyTextHasNoPlans) { EXPECT_TRUE(parse_plans("# nothing\n\n", "p").empty()); }

TEST(PlanBuiltins, BertTp) {
  auto plans = load_plans("builtin:bert-tp");
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].name, "tp");
  EXPECT_EQ(plans[0].source, "builtin:bert-tp");
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& r : plans[0].rules) got.emplace_back(r.pattern, r.transform.to_string());
  std::vector<std::pair<std::string, std::string>> want = {{"*.attention.self.query", "colwise(tp)"},
                                                           {"*.attention.self.key", "colwise(tp)"},
                                                           {"*.attention.self.value", "colwise(tp)"},
                                                           {"*.intermediate.dense", "colwise(tp)"},
                                                           {"*.output.dense", "rowwise(tp)"}};
  EXPECT_EQ(got, want);
}

TEST(PlanBuiltins, Qwen2Tp) {
  auto plans = load_plans("builtin:qwen2-tp");
  ASSERT_EQ(plans.size(), 1u);
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& r : plans[0].rules) got.emplace_back(r.pattern, r.transform.to_string());
  std::vector<std::pair<std::string, std::string>> want = {
      {"*.self_attn.q_proj", "colwise(tp)"}, {"*.self_attn.k_proj", "colwise(tp)"},
      {"*.self_attn.v_proj", "colwise(tp)"}, {"*.self_attn.o_proj", "rowwise(tp)"},
      {"*.mlp.gate_proj", "colwise(tp)"},    {"*.mlp.up_proj", "colwise(tp)"},
      {"*.mlp.down_proj", "rowwise(tp)"}};
  EXPECT_EQ(got, want);
}

TEST(PlanBuiltins, UnknownBuiltinListsKnownOnes) {
  try {
    load_plans("builtin:t5-tp");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "unknown built-in plan 'builtin:t5-tp'; known: builtin:bert-tp, builtin:decoder-tp, "
                                     "builtin:gpt2-tp, builtin:llama-tp, builtin:qwen2-tp, builtin:qwen3-tp");
  }
}

TEST(PlanLoad, ReadsFileAndNamesItInErrors) {
  std::string path = std::string(FME_BINARY_DIR) + "/test_plans_load.plan";
  {
    std::ofstream f(path);
    f << "plan tp\n*.q colwise(tp)\n*.k sideways(tp)\n";
  }
  try {
    load_plans(path);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ":3:5: unknown transform 'sideways'", 0), 0u) << e.what();
  }
  {
    std::ofstream f(path);
    f << "plan tp\n*.q colwise(tp)\n";
  }
  auto plans = load_plans(path);
  EXPECT_EQ(plans.at(0).source, path);
  std::remove(path.c_str());
  EXPECT_THROW(load_plans(path), IoError);
}

}  // namespace
}  // namespace fme::plans
