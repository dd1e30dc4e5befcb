#include "data/chat_format.h"

#include <filesystem>

#include "util/error.h"
#include "util/file.h"
#include "util/json.h"

namespace fme::arc {
namespace {

bool has(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// The code point starting at s[i] (UTF-8) and its length; an invalid byte reads as itself, length 1.
char32_t decode_at(const std::string& s, size_t i, size_t& len) {
  const auto b = static_cast<unsigned char>(s[i]);
  len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
  if (len == 1 || i + len > s.size()) return len = 1, b;
  char32_t c = b & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  return c;
}

// Python's str.isspace(): Unicode White_Space plus the ASCII separators 0x1c-0x1f.
bool python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

}  // namespace

std::string python_strip(const std::string& s) {
  size_t begin = 0, len = 0;
  while (begin < s.size() && python_space(decode_at(s, begin, len))) begin += len;
  // Scan forward, remembering where the last run of whitespace began (UTF-8 cannot be decoded backwards
  // without care, and these strings are short next to tokenizing them).
  size_t end = begin, i = begin;
  while (i < s.size()) {
    const bool space = python_space(decode_at(s, i, len));
    i += len;
    if (!space) end = i;
  }
  return s.substr(begin, end - begin);
}

ChatFormat chat_format_of_template(const std::string& t, const std::string& bos, const std::string& what) {
  ChatFormat f;
  f.add_special_tokens = false;
  if (has(t, "<|im_start|>") && has(t, "<|im_end|>")) {
    // Qwen2.5 / Qwen3: a given system message replaces the default one; no trimming.
    f.name = "chatml";
    f.wrapper = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}";
  } else if (has(t, "<|start_header_id|>") && has(t, "<|eot_id|>")) {
    // Llama 3: BOS, then each message as a header and its trimmed content.
    f.name = "llama3";
    f.wrapper = bos + "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n{assistant}";
    f.trim_system = f.trim_user = true;
  } else if (has(t, "<start_of_turn>") && has(t, "<end_of_turn>")) {
    // Gemma: no system turn; the system text (untrimmed) and a blank line open the first user turn, whose
    // content is trimmed. The assistant's turn is "model".
    f.name = "gemma";
    f.wrapper = bos + "<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n{assistant}";
    f.trim_user = true;
  } else {
    throw UnsupportedError(what + ": chat_template is not one fme renders (ChatML, Llama 3 or Gemma turn markers); "
                                  "use --chat template (the prompt template's own wrapper) or --chat plain");
  }
  return f;
}

ChatFormat plain_chat_format() { return ChatFormat{"plain", "{system}\n{user}\n{assistant}", false, false, true}; }

ChatFormat template_chat_format(const std::string& wrapper) { return ChatFormat{"template", wrapper, false, false, true}; }

void check_chat_choice(const std::string& choice) {
  if (choice != "auto" && choice != "model" && choice != "template" && choice != "plain")
    throw ConfigError("--chat: expected auto, model, template or plain, got '" + choice + "'");
}

ChatFormat choose_chat_format(const std::string& choice, const std::string& template_wrapper,
                              const std::string& tokenizer_config) {
  check_chat_choice(choice);
  if (choice == "template") return template_chat_format(template_wrapper);
  if (choice == "plain") return plain_chat_format();
  Json cfg;
  if (std::filesystem::exists(tokenizer_config)) cfg = parse_json(read_file(tokenizer_config), tokenizer_config);
  const auto it = cfg.is_object() ? cfg.find("chat_template") : cfg.end();
  if (it == cfg.end() || it->is_null()) {
    if (choice == "model")
      throw ConfigError(tokenizer_config + ": no 'chat_template' (--chat model needs one; --chat plain or template do not)");
    return plain_chat_format();
  }
  if (!it->is_string())
    throw UnsupportedError(tokenizer_config + ": 'chat_template' is " + describe_json(*it) +
                           "; fme reads a single template string (use --chat template or --chat plain)");
  // bos_token: a string, or an AddedToken object {"content": ...}, or absent (templates that write it then
  // write an empty string, as transformers does).
  std::string bos;
  if (auto b = cfg.find("bos_token"); b != cfg.end()) {
    if (b->is_string()) bos = b->get<std::string>();
    else if (b->is_object() && b->contains("content") && (*b)["content"].is_string()) bos = (*b)["content"].get<std::string>();
  }
  return chat_format_of_template(it->get<std::string>(), bos, tokenizer_config);
}

}  // namespace fme::arc
