// Tests of ARC prompt rendering: the 30 prompts arc24's own code made must come out byte for byte, plus
// grid encoders and template validation.
#include <gtest/gtest.h>

#include <fstream>

#include "data/arc_augment.h"
#include "data/arc_prompt.h"
#include "data_test_helpers.h"
#include "util/error.h"
#include "util/json.h"

namespace {

namespace arc = fme::arc;
using fme_data_test::error_of;
using fme_data_test::kData;
using fme_data_test::TempDir;
using fme_data_test::write_text;

// Each line: task_file, hflip, rot90, test_index, prompt (and ids we do not need here).
void check_expected_prompts(const arc::PromptTemplate& tmpl) {
  arc::PromptRenderer renderer(tmpl);
  std::ifstream in(kData + "/prompts/expected_prompts.jsonl");
  ASSERT_TRUE(in) << "missing expected_prompts.jsonl";
  std::string line;
  size_t total = 0, equal = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    fme::Json j = fme::Json::parse(line);
    ++total;
    arc::Task task = arc::read_task_file(kData + "/" + j["task_file"].get<std::string>());
    arc::Augmentation a;
    a.hflip = j["hflip"].get<bool>();
    a.rot90 = j["rot90"].get<int>();
    std::string got = renderer.prompt(arc::augment_task(task, a), j["test_index"].get<size_t>());
    const std::string& want = j["prompt"].get_ref<const std::string&>();
    if (got == want) {
      ++equal;
    } else {
      size_t i = 0;
      while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
      ADD_FAILURE() << task.id << " hflip=" << a.hflip << " rot90=" << a.rot90 << " differs at byte " << i << ": got '"
                    << got.substr(i > 40 ? i - 40 : 0, 80) << "' want '" << want.substr(i > 40 ? i - 40 : 0, 80) << "'";
    }
  }
  EXPECT_EQ(total, 30u);
  EXPECT_EQ(equal, total);
}

TEST(ArcPrompt, BuiltInTemplateReproducesArc24Prompts) { check_expected_prompts(arc::default_prompt_template()); }

TEST(ArcPrompt, TemplateFileReproducesArc24Prompts) {
  arc::PromptTemplate t = arc::load_prompt_template(kData + "/prompts/output-from-examples-v0.json");
  EXPECT_EQ(t.name, "output-from-examples-v0");
  EXPECT_EQ(arc::prompt_template_to_json(t), arc::prompt_template_to_json(arc::default_prompt_template()));
  check_expected_prompts(t);
}

TEST(ArcPrompt, GridEncoders) {
  const arc::Grid g{{1, 2, 3}, {4, 5, 6}};
  EXPECT_EQ(arc::GridEncoder("GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))").encode(g),
            "```grid shape: 2x3\n1 123\n2 456\n```");
  EXPECT_EQ(arc::GridEncoder("MinimalGridEncoder()").encode(g), "123\n456");
  EXPECT_EQ(arc::GridEncoder("GridCodeBlockEncoder(GridWithSeparationEncoder('|'))").encode(g),
            "```grid\n1|2|3\n4|5|6\n```");
  EXPECT_EQ(arc::GridEncoder(" GridCodeBlockEncoder( RepeatNumberEncoder(n=2) ) ").encode(g),
            "```grid\n112233\n445566\n```");
  EXPECT_EQ(arc::GridEncoder("RepeatNumberEncoder()").encode({{7}}), "777");
  EXPECT_EQ(arc::GridEncoder("ReplaceNumberEncoder(MinimalGridEncoder())").encode({{0, 9}}), "ñĞ");
  for (const char* bad : {"", "Foo()", "MinimalGridEncoder", "GridShapeEncoder(MinimalGridEncoder())x",
                          "GridShapeEncoder()", "GridWithSeparationEncoder(|)", "RepeatNumberEncoder(0)"}) {
    std::string m = error_of<fme::ConfigError>([&] { arc::GridEncoder e(bad); });
    EXPECT_NE(m.find("grid encoder '" + std::string(bad) + "'"), std::string::npos) << m;
  }
}

TEST(ArcPrompt, OnePromptPerTestInput) {
  arc::Task t = arc::parse_task_text(
      R"({"train": [{"input": [[1]], "output": [[2]]}, {"input": [[3]], "output": [[4]]}],
          "test": [{"input": [[5]]}, {"input": [[6, 7]]}]})",
      "two", "two.json");
  arc::PromptTemplate tmpl{"mini",
                           "MinimalGridEncoder()",
                           "S",
                           "U:",
                           "[{index} {input}>{output}]",
                           "(T {input})",
                           "A",
                           "<{system}|{user}|{assistant}> {not_a_placeholder} {"};
  // Unknown placeholders are rejected when parsing, but a hand-built template renders them literally.
  arc::PromptRenderer r(tmpl);
  auto prompts = r.prompts(t);
  ASSERT_EQ(prompts.size(), 2u);
  EXPECT_EQ(prompts[0], "<S|U:[1 1>2][2 3>4](T 5)|A> {not_a_placeholder} {");
  EXPECT_EQ(prompts[1], "<S|U:[1 1>2][2 3>4](T 67)|A> {not_a_placeholder} {");
  EXPECT_THROW(r.prompt(t, 2), std::out_of_range);
}

TEST(ArcPrompt, TemplateErrorsAreClear) {
  fme::Json base = arc::prompt_template_to_json(arc::default_prompt_template());
  auto err = [](const fme::Json& j) {
    return error_of<fme::ConfigError>([&] { arc::parse_prompt_template(j, "t.json"); });
  };
  for (const char* field : {"name", "grid_encoder", "system", "user_prefix", "example", "test", "assistant", "chat"}) {
    fme::Json j = base;
    j.erase(field);
    EXPECT_EQ(err(j), "t.json: missing required key '" + std::string(field) + "'");
  }
  fme::Json j = base;
  j["example"] = "{input} {inptu} {output}";
  EXPECT_NE(err(j).find("t.json: field 'example' has unknown placeholder {inptu}"), std::string::npos) << err(j);
  j = base;
  j["test"] = "no input here";
  EXPECT_NE(err(j).find("t.json: field 'test' lacks the placeholder {input}"), std::string::npos) << err(j);
  j = base;
  j["grid_encoder"] = "FancyEncoder()";
  EXPECT_NE(err(j).find("t.json: field 'grid_encoder': grid encoder 'FancyEncoder()': unknown encoder 'FancyEncoder'"),
            std::string::npos)
      << err(j);
  j = base;
  j["system"] = 3;
  EXPECT_NE(err(j).find("t.json: key 'system' must be a string"), std::string::npos) << err(j);

  TempDir dir;
  write_text(dir / "bad.json", "{");
  std::string m = error_of<fme::FormatError>([&] { arc::load_prompt_template(dir / "bad.json"); });
  EXPECT_NE(m.find("bad.json"), std::string::npos) << m;
}

}  // namespace
