// ARC prompts as the seed (ironbar/arc24) built them: a template (system text, user prefix, one block per
// train example, a test block, an assistant prefix and a chat wrapper) plus a grid encoder that turns a
// grid into text. The output is the prompt string; tokenization happens in another layer.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "data/arc_task.h"
#include "data/chat_format.h"
#include "util/json.h"

namespace fme::arc {

// A prompt template, in the format of arc24's output-from-examples-v0.json. Placeholders:
//   example: {index} (1-based), {input}, {output};  test: {input};  chat: {system}, {user}, {assistant}.
// Substitution is one pass over the template text: inserted values are never rescanned, and a brace that
// does not start a known placeholder stays literal.
struct PromptTemplate {
  std::string name;
  std::string grid_encoder;  // e.g. "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))"
  std::string system;
  std::string user_prefix;
  std::string example;
  std::string test;
  std::string assistant;
  std::string chat;
};

// Reads the eight string fields; ConfigError "<what>: missing required key 'x'" for a missing or
// non-string field, and for a field lacking a required placeholder ({input}/{output} in example,
// {input} in test, {user} in chat), an unknown {placeholder}, or an unsupported grid_encoder.
PromptTemplate parse_prompt_template(const Json& j, const std::string& what);
// Reads a template file (`--prompt-template FILE`); FormatError if it is not JSON.
PromptTemplate load_prompt_template(const std::string& path);
// The built-in template: arc24's output-from-examples-v0 (Apache-2.0), the one the seed used.
const PromptTemplate& default_prompt_template();
Json prompt_template_to_json(const PromptTemplate& t);

// A grid encoder, built from arc24's spec syntax. Supported (composable as in arc24):
//   MinimalGridEncoder()                  rows of digits joined by "\n"
//   GridWithSeparationEncoder('|')        digits joined by the separator
//   RepeatNumberEncoder(n)                each digit written n times (default 3)
//   GridCodeBlockEncoder(E)               "```grid\n" + E + "\n```"
//   GridShapeEncoder(E)                   "```grid shape: HxW\n" + E + "\n```"
//   RowNumberEncoder(E)                   each line of E prefixed with "<row> " (1-based), then stripped
//   ReplaceNumberEncoder(E)               digits of E replaced by arc24's ten symbols (UTF-8)
// Anything else is a ConfigError naming the spec.
class GridEncoder {
 public:
  explicit GridEncoder(const std::string& spec);
  ~GridEncoder();
  GridEncoder(GridEncoder&&) noexcept;
  GridEncoder& operator=(GridEncoder&&) noexcept;

  std::string encode(const Grid& g) const;
  const std::string& spec() const { return spec_; }

  struct Node;

 private:
  std::string spec_;
  std::unique_ptr<Node> root_;
};

// The chat text of one exchange: `chat`'s wrapper with its placeholders filled (trimmed as it says).
std::string render_chat(const ChatFormat& chat, const std::string& system, const std::string& user,
                        const std::string& assistant);

// Renders prompts of one template. For test input t of a task:
//   user = user_prefix + example(1) + ... + example(n_train) + test(t)
//   prompt = chat.wrapper with {system} = system, {user} = user, {assistant} = assistant (each trimmed
//            where the chat format says), chat being the template's own wrapper unless given.
class PromptRenderer {
 public:
  explicit PromptRenderer(PromptTemplate tmpl);  // throws ConfigError for an unsupported grid_encoder
  PromptRenderer(PromptTemplate tmpl, ChatFormat chat);
  // The user message for test input `test_index` (std::out_of_range if there is none).
  std::string user_message(const Task& task, size_t test_index) const;
  // The full prompt text for test input `test_index`.
  std::string prompt(const Task& task, size_t test_index) const;
  // One prompt per test input, in order.
  std::vector<std::string> prompts(const Task& task) const;

  const PromptTemplate& prompt_template() const { return tmpl_; }
  const ChatFormat& chat() const { return chat_; }
  const GridEncoder& encoder() const { return encoder_; }

 private:
  PromptTemplate tmpl_;
  ChatFormat chat_;
  GridEncoder encoder_;
};

}  // namespace fme::arc
