// ARC prompt rendering (see arc_prompt.h): template loading and validation, arc24's grid encoders, and
// the assembly of one prompt per test input.
#include "data/arc_prompt.h"

#include <cctype>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "util/error.h"

namespace fme::arc {
namespace {

// arc24's output-from-examples-v0 template (ironbar/arc24, Apache-2.0), byte for byte as in
// shared/data/prompts/output-from-examples-v0.json; tests check the prompts it renders against arc24's own.
constexpr const char* kDefaultTemplateJson = R"json({
 "name": "output-from-examples-v0",
 "grid_encoder": "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
 "system": "You are a helpful AI assistant. Your job is to solve tasks from the Abstraction and Reasoning Challenge (ARC). \nThe user will present you with sample input and output grids for each task. \nYour job will be to understand the transformation between the input and the output and apply it to the last input grid given by the user. \nThe puzzle-like inputs and outputs present a grid where each square can be one of ten colors. A grid can be any height or width between 1x1 and 30x30.\nThe background of the grid is typically colored with 0.\nThe tasks from ARC are based on the following priors:\n\n- Objectness: Objects persist and cannot appear or disappear without reason. Objects can interact or not depending on the circumstances.\n- Goal-directed: Objects can be animate or inanimate. Some objects are \"agents\" - they have intentions and they pursue goals.\n- Numbers & counting: Objects can be counted or sorted by their shape, appearance, or movement using basic mathematics like addition, subtraction, and comparison.\n- Basic geometry & topology: Objects can be shapes like rectangles, triangles, and circles which can be mirrored, rotated, translated, deformed, combined, repeated, etc. Differences in distances can be detected.\n\nThe transformations between input and output should be based on these priors.\n",
 "user_prefix": "Let's see if you can solve this simple ARC task. These are some input-output grid examples that define the task.\n",
 "example": "\n## Example {index}\n\n### Input\n\n{input}\n\n### Output\n\n{output}\n",
 "test": "\n## Test case\n\n### Input\n\n{input}",
 "assistant": "### Output\n\n```grid",
 "chat": "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}"
})json";

bool is_ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// If text[pos] == '{' starts "{identifier}", returns the identifier's length (the '}' is at pos+1+len).
size_t placeholder_at(std::string_view text, size_t pos) {
  if (text[pos] != '{' || pos + 1 >= text.size() || !is_ident_start(text[pos + 1])) return 0;
  size_t e = pos + 1;
  while (e < text.size() && is_ident_char(text[e])) ++e;
  return e < text.size() && text[e] == '}' ? e - pos - 1 : 0;
}

using Values = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// One pass: a known {name} becomes its value; anything else is copied as is.
std::string substitute(std::string_view text, Values values) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (size_t len = placeholder_at(text, i)) {
      std::string_view name = text.substr(i + 1, len);
      const std::string_view* value = nullptr;
      for (const auto& kv : values)
        if (kv.first == name) value = &kv.second;
      if (value) {
        out += *value;
        i += len + 2;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

// Checks that `field` has each required placeholder and no placeholder outside `allowed`: a typo such as
// {inptu} would otherwise reach the model as literal text.
void check_placeholders(const std::string& text, const std::string& field,
                        std::initializer_list<std::string_view> allowed,
                        std::initializer_list<std::string_view> required, const std::string& what) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (size_t len = placeholder_at(text, i)) {
      std::string_view name(text.data() + i + 1, len);
      bool ok = false;
      for (auto a : allowed) ok = ok || a == name;
      if (!ok) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "{" : ", {") + std::string(a) + "}";
        throw ConfigError(what + ": field '" + field + "' has unknown placeholder {" + std::string(name) +
                          "}; allowed: " + list);
      }
    }
  }
  for (auto r : required)
    if (text.find("{" + std::string(r) + "}") == std::string::npos)
      throw ConfigError(what + ": field '" + field + "' lacks the placeholder {" + std::string(r) + "}");
}

// ---- grid encoder spec parsing ----

const char* const kReplaceSymbols[10] = {"ñ", "ò", "÷", "û", "ą", "ć", "ď", "ę", "Ě", "Ğ"};

constexpr const char* kSupported =
    "MinimalGridEncoder(), GridWithSeparationEncoder('<sep>'), RepeatNumberEncoder(<n>), "
    "GridCodeBlockEncoder(E), GridShapeEncoder(E), RowNumberEncoder(E), ReplaceNumberEncoder(E)";

}  // namespace

struct GridEncoder::Node {
  enum class Kind { Minimal, Separation, Repeat, CodeBlock, Shape, RowNumber, Replace } kind;
  std::string sep;  // Separation
  int repeat = 3;   // Repeat
  std::unique_ptr<Node> inner;
};

namespace {

// A tiny recursive-descent parser for the Python-expression subset arc24 configs use.
class SpecParser {
 public:
  explicit SpecParser(const std::string& spec) : s_(spec) {}

  std::unique_ptr<GridEncoder::Node> parse() {
    auto node = encoder();
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the encoder");
    return node;
  }

 private:
  using Node = GridEncoder::Node;
  const std::string& s_;
  size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& why) const {
    throw ConfigError("grid encoder '" + s_ + "': " + why + " at offset " + std::to_string(pos_) +
                      "; supported: " + kSupported);
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  std::string ident() {
    skip_ws();
    size_t b = pos_;
    while (pos_ < s_.size() && is_ident_char(s_[pos_])) ++pos_;
    if (b == pos_) fail("expected an encoder name");
    return s_.substr(b, pos_ - b);
  }
  std::string string_literal() {
    skip_ws();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) fail("expected a quoted separator");
    char q = s_[pos_++];
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') fail("escape sequences in separators are not supported");
      out += s_[pos_++];
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }
  int small_int() {
    skip_ws();
    size_t b = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (b == pos_ || pos_ - b > 2 || std::stoi(s_.substr(b, pos_ - b)) < 1) fail("expected a repeat count 1..99");
    return std::stoi(s_.substr(b, pos_ - b));
  }

  std::unique_ptr<Node> encoder() {
    const size_t start = pos_;
    const std::string name = ident();
    auto node = std::make_unique<Node>();
    expect('(');
    if (name == "MinimalGridEncoder") {
      node->kind = Node::Kind::Minimal;
    } else if (name == "GridWithSeparationEncoder") {
      node->kind = Node::Kind::Separation;
      node->sep = string_literal();
    } else if (name == "RepeatNumberEncoder") {
      node->kind = Node::Kind::Repeat;
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] != ')') {
        if (s_.compare(pos_, 1, "n") == 0) {  // the keyword form n=3
          ++pos_;
          expect('=');
        }
        node->repeat = small_int();
      }
    } else if (name == "GridCodeBlockEncoder" || name == "GridShapeEncoder" || name == "RowNumberEncoder" ||
               name == "ReplaceNumberEncoder") {
      node->kind = name == "GridCodeBlockEncoder" ? Node::Kind::CodeBlock
                   : name == "GridShapeEncoder"   ? Node::Kind::Shape
                   : name == "RowNumberEncoder"   ? Node::Kind::RowNumber
                                                  : Node::Kind::Replace;
      node->inner = encoder();
    } else {
      pos_ = start;
      fail("unknown encoder '" + name + "'");
    }
    expect(')');
    return node;
  }
};

// Python's str.strip() for the ASCII whitespace an encoder can produce.
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string encode_node(const GridEncoder::Node& n, const Grid& g) {
  using K = GridEncoder::Node::Kind;
  switch (n.kind) {
    case K::Minimal:
    case K::Separation:
    case K::Repeat: {
      std::string out;
      for (size_t r = 0; r < g.size(); ++r) {
        if (r) out += '\n';
        for (size_t c = 0; c < g[r].size(); ++c) {
          if (c && n.kind == K::Separation) out += n.sep;
          out.append(n.kind == K::Repeat ? static_cast<size_t>(n.repeat) : 1, static_cast<char>('0' + g[r][c]));
        }
      }
      return out;
    }
    case K::CodeBlock:
      return "```grid\n" + encode_node(*n.inner, g) + "\n```";
    case K::Shape:
      return "```grid shape: " + std::to_string(height(g)) + "x" + std::to_string(width(g)) + "\n" +
             encode_node(*n.inner, g) + "\n```";
    case K::RowNumber: {
      // arc24: for each line of the inner text (splitlines), "{idx+1} {line}\n", then strip().
      const std::string inner = encode_node(*n.inner, g);
      std::string out;
      size_t row = 0;
      for (size_t b = 0; b < inner.size();) {
        size_t e = inner.find('\n', b);
        if (e == std::string::npos) e = inner.size();
        out += std::to_string(++row) + " " + inner.substr(b, e - b) + "\n";
        b = e + 1;
      }
      return strip(out);
    }
    case K::Replace: {
      std::string out;
      for (char c : encode_node(*n.inner, g)) {
        if (c >= '0' && c <= '9')
          out += kReplaceSymbols[c - '0'];
        else
          out += c;
      }
      return out;
    }
  }
  return {};
}

}  // namespace

GridEncoder::GridEncoder(const std::string& spec) : spec_(spec), root_(SpecParser(spec_).parse()) {}
GridEncoder::~GridEncoder() = default;
GridEncoder::GridEncoder(GridEncoder&&) noexcept = default;
GridEncoder& GridEncoder::operator=(GridEncoder&&) noexcept = default;

std::string GridEncoder::encode(const Grid& g) const { return encode_node(*root_, g); }

PromptTemplate parse_prompt_template(const Json& j, const std::string& what) {
  if (!j.is_object()) throw ConfigError(what + ": a prompt template must be a JSON object, got " + describe_json(j));
  PromptTemplate t;
  t.name = require<std::string>(j, "name", what);
  t.grid_encoder = require<std::string>(j, "grid_encoder", what);
  t.system = require<std::string>(j, "system", what);
  t.user_prefix = require<std::string>(j, "user_prefix", what);
  t.example = require<std::string>(j, "example", what);
  t.test = require<std::string>(j, "test", what);
  t.assistant = require<std::string>(j, "assistant", what);
  t.chat = require<std::string>(j, "chat", what);
  check_placeholders(t.example, "example", {"index", "input", "output"}, {"input", "output"}, what);
  check_placeholders(t.test, "test", {"input"}, {"input"}, what);
  check_placeholders(t.chat, "chat", {"system", "user", "assistant"}, {"user"}, what);
  try {
    GridEncoder check(t.grid_encoder);
  } catch (const ConfigError& e) {
    throw ConfigError(what + ": field 'grid_encoder': " + e.what());
  }
  return t;
}

PromptTemplate load_prompt_template(const std::string& path) {
  return parse_prompt_template(read_json_file(path), path);
}

const PromptTemplate& default_prompt_template() {
  static const PromptTemplate t =
      parse_prompt_template(parse_json(kDefaultTemplateJson, "built-in prompt template"), "built-in prompt template");
  return t;
}

Json prompt_template_to_json(const PromptTemplate& t) {
  return Json{{"name", t.name},           {"grid_encoder", t.grid_encoder},
              {"system", t.system},       {"user_prefix", t.user_prefix},
              {"example", t.example},     {"test", t.test},
              {"assistant", t.assistant}, {"chat", t.chat}};
}

std::string render_chat(const ChatFormat& chat, const std::string& system, const std::string& user,
                        const std::string& assistant) {
  return substitute(chat.wrapper, {{"system", chat.trim_system ? python_strip(system) : system},
                                   {"user", chat.trim_user ? python_strip(user) : user},
                                   {"assistant", assistant}});
}

PromptRenderer::PromptRenderer(PromptTemplate tmpl) : PromptRenderer(tmpl, template_chat_format(tmpl.chat)) {}

PromptRenderer::PromptRenderer(PromptTemplate tmpl, ChatFormat chat)
    : tmpl_(std::move(tmpl)), chat_(std::move(chat)), encoder_(tmpl_.grid_encoder) {}

std::string PromptRenderer::user_message(const Task& task, size_t test_index) const {
  if (test_index >= task.test.size())
    throw std::out_of_range("task " + task.id + " has " + std::to_string(task.test.size()) +
                            " test inputs, asked for index " + std::to_string(test_index));
  std::string user = tmpl_.user_prefix;
  for (size_t i = 0; i < task.train.size(); ++i) {
    const std::string index = std::to_string(i + 1);
    const std::string input = encoder_.encode(task.train[i].input);
    const std::string output = encoder_.encode(task.train[i].output);
    user += substitute(tmpl_.example, {{"index", index}, {"input", input}, {"output", output}});
  }
  user += substitute(tmpl_.test, {{"input", encoder_.encode(task.test[test_index].input)}});
  return user;
}

std::string PromptRenderer::prompt(const Task& task, size_t test_index) const {
  const std::string user = user_message(task, test_index);
  return render_chat(chat_, tmpl_.system, user, tmpl_.assistant);
}

std::vector<std::string> PromptRenderer::prompts(const Task& task) const {
  std::vector<std::string> out;
  out.reserve(task.test.size());
  for (size_t t = 0; t < task.test.size(); ++t) out.push_back(prompt(task, t));
  return out;
}

}  // namespace fme::arc
