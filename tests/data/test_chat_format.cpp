// Chat formats against the models' own chat templates, rendered by Jinja2 itself the way Hugging Face's
// apply_chat_template renders them (tests/data/hf_chat_template.py, Debian's python3-jinja2): ARC prompts
// and texts whose leading and trailing whitespace the templates trim or keep.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "data/arc_augment.h"
#include "data/arc_prompt.h"
#include "data/chat_format.h"
#include "data_test_helpers.h"
#include "util/error.h"
#include "util/json.h"

namespace {

namespace arc = fme::arc;
using fme_data_test::error_of;
using fme_data_test::kData;
using fme_data_test::TempDir;
using fme_data_test::write_text;

std::string tokenizer_config(const std::string& name) { return kData + "/tokenizers/" + name + "/tokenizer_config.json"; }

// What Jinja renders for [system, user] with the generation prompt.
std::string jinja(const std::string& config, const std::string& system, const std::string& user, const TempDir& dir) {
  const std::string messages = dir / "messages.json";
  write_text(messages, fme::Json{{"system", system}, {"user", user}}.dump());
  const std::string cmd = "/usr/bin/python3 " FME_SOURCE_DIR "/tests/data/hf_chat_template.py " + config + " " + messages;
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

struct Case {
  const char* tokenizer;
  const char* format;
};

class ModelChatTemplate : public ::testing::TestWithParam<Case> {};

TEST_P(ModelChatTemplate, RendersWhatJinjaRenders) {
  const Case c = GetParam();
  TempDir dir;
  const std::string config = tokenizer_config(c.tokenizer);
  const arc::PromptTemplate& tmpl = arc::default_prompt_template();
  const arc::ChatFormat chat = arc::choose_chat_format("auto", tmpl.chat, config);
  EXPECT_EQ(chat.name, c.format);
  EXPECT_FALSE(chat.add_special_tokens);  // the template writes its own BOS
  // ARC prompts (the seed's first tasks, one augmented) through the renderer.
  arc::PromptRenderer renderer(tmpl, chat);
  std::ifstream in(kData + "/prompts/expected_prompts.jsonl");
  std::string line;
  for (int n = 0; n < 3 && std::getline(in, line); ++n) {
    fme::Json j = fme::Json::parse(line);
    arc::Augmentation a;
    a.hflip = j["hflip"].get<bool>();
    a.rot90 = j["rot90"].get<int>();
    const arc::Task task = arc::augment_task(arc::read_task_file(kData + "/" + j["task_file"].get<std::string>()), a);
    const size_t t = j["test_index"].get<size_t>();
    EXPECT_EQ(renderer.prompt(task, t), jinja(config, tmpl.system, renderer.user_message(task, t), dir) + tmpl.assistant)
        << c.tokenizer << " " << j["task_file"];
  }
  // Whitespace the templates trim (Llama 3, Gemma's user turn) or keep (ChatML, Gemma's system text),
  // Unicode whitespace included, and an empty system text.
  const std::vector<std::pair<std::string, std::string>> texts{
      {"  sys\n", "\n user text \t\n"},
      {"", "x"},
      {"\xe3\x80\x80" "a\xc2\xa0", "\xc2\x85" "b c\xe2\x80\xa8"},
      {"multi\n\nline", "ends with a brace }"}};
  for (const auto& [system, user] : texts)
    EXPECT_EQ(arc::render_chat(chat, system, user, "ASSISTANT"), jinja(config, system, user, dir) + "ASSISTANT")
        << c.tokenizer << " " << fme::Json(system).dump() << " " << fme::Json(user).dump();
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, ModelChatTemplate,
                         ::testing::Values(Case{"qwen2.5", "chatml"}, Case{"qwen3", "chatml"}, Case{"llama3", "llama3"},
                                           Case{"gemma3", "gemma"}),
                         [](const auto& info) {
                           std::string n = info.param.tokenizer;  // "qwen2.5" -> "qwen2_5"
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(ChatFormat, ModelsWithoutATemplateFallBackToPlainText) {
  const arc::PromptTemplate& tmpl = arc::default_prompt_template();
  for (const char* name : {"gpt2", "mistral", "bert-base-uncased"}) {
    const arc::ChatFormat chat = arc::choose_chat_format("auto", tmpl.chat, tokenizer_config(name));
    EXPECT_EQ(chat.name, "plain") << name;
    EXPECT_TRUE(chat.add_special_tokens);  // BERT's [CLS] ... [SEP] as for any text
    EXPECT_EQ(arc::render_chat(chat, "S", "U", "A"), "S\nU\nA");
    const std::string e = error_of<fme::ConfigError>([&] { arc::choose_chat_format("model", tmpl.chat, tokenizer_config(name)); });
    EXPECT_NE(e.find(tokenizer_config(name)), std::string::npos) << e;
    EXPECT_NE(e.find("no 'chat_template'"), std::string::npos) << e;
  }
  // No tokenizer_config.json at all: plain too.
  EXPECT_EQ(arc::choose_chat_format("auto", tmpl.chat, "/nonexistent/tokenizer_config.json").name, "plain");
}

TEST(ChatFormat, TheTemplatesOwnWrapperIsTheSeedsBehaviour) {
  const arc::PromptTemplate& tmpl = arc::default_prompt_template();
  const arc::ChatFormat chat = arc::choose_chat_format("template", tmpl.chat, tokenizer_config("llama3"));
  EXPECT_EQ(chat.name, "template");
  EXPECT_EQ(chat.wrapper, tmpl.chat);
  EXPECT_TRUE(chat.add_special_tokens);
  // For Qwen the model's own template renders the very same text as the seed's ChatML wrapper.
  const arc::ChatFormat qwen = arc::choose_chat_format("auto", tmpl.chat, tokenizer_config("qwen2.5"));
  EXPECT_EQ(arc::render_chat(qwen, "s", " u ", "a"), arc::render_chat(chat, "s", " u ", "a"));
}

TEST(ChatFormat, AnUnknownTemplateOrChoiceIsAClearError) {
  TempDir dir;
  const std::string config = dir / "tokenizer_config.json";
  write_text(config, R"({"chat_template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}"})");
  std::string e = error_of<fme::UnsupportedError>([&] { arc::choose_chat_format("auto", "{user}", config); });
  EXPECT_NE(e.find(config), std::string::npos) << e;
  EXPECT_NE(e.find("--chat template"), std::string::npos) << e;
  EXPECT_EQ(arc::choose_chat_format("template", "{user}", config).name, "template");  // the way out works
  write_text(config, R"({"chat_template": [{"name": "default", "template": "x"}]})");
  e = error_of<fme::UnsupportedError>([&] { arc::choose_chat_format("auto", "{user}", config); });
  EXPECT_NE(e.find("'chat_template'"), std::string::npos) << e;
  write_text(config, "{not json");
  e = error_of<fme::Error>([&] { arc::choose_chat_format("auto", "{user}", config); });
  EXPECT_NE(e.find(config), std::string::npos) << e;
  e = error_of<fme::ConfigError>([&] { arc::choose_chat_format("jinja", "{user}", config); });
  EXPECT_NE(e.find("auto, model, template or plain"), std::string::npos) << e;
}

TEST(ChatFormat, PythonStripRemovesUnicodeWhitespaceOnly) {
  EXPECT_EQ(arc::python_strip(" \t\n\r\x0b\x0c" "a b" "\x1c\x1f "), "a b");
  EXPECT_EQ(arc::python_strip("\xe3\x80\x80\xc2\xa0" "x" "\xe2\x80\xa9\xc2\x85"), "x");
  EXPECT_EQ(arc::python_strip("\xe2\x80\x8b" "x"), "\xe2\x80\x8b" "x");  // U+200B is not whitespace in Python
  EXPECT_EQ(arc::python_strip("   "), "");
  EXPECT_EQ(arc::python_strip(""), "");
  EXPECT_EQ(arc::python_strip("\xff x \xff"), "\xff x \xff");  // invalid UTF-8 is kept, not read past
}

}  // namespace
