// How a prompt's system text, user message and assistant prefix become one string: the model's own chat
// template (tokenizer_config.json "chat_template"), the prompt template's `chat` wrapper, or plain text.
//
// fme does not run Jinja. It recognises the three families of chat templates that ARC models use — ChatML
// (Qwen), Llama 3 and Gemma — by their turn markers, and renders what each renders for the messages
// [system, user] with add_generation_prompt=True, as Hugging Face's apply_chat_template does; a test
// compares both on the real templates with Jinja itself. A template of another kind is refused, naming the
// file and the choices (--chat template | plain), never rendered approximately.
#pragma once
#include <string>

namespace fme::arc {

struct ChatFormat {
  std::string name;     // "chatml", "llama3", "gemma", "template", "plain"
  // Placeholders {system}, {user}, {assistant}, filled in one pass (see PromptTemplate).
  std::string wrapper;
  // Jinja's `trim` (Python's str.strip) applied to the system text / user message first, where the
  // model's template does so.
  bool trim_system = false, trim_user = false;
  // Whether the tokenizer adds its special tokens (BOS) to the rendered text. False for a model's chat
  // template: it writes them itself, and apply_chat_template(tokenize=True) adds none.
  bool add_special_tokens = true;
};

// The family of `chat_template` with `bos_token` written where the template writes it. UnsupportedError
// naming `what` for a template fme does not recognise.
ChatFormat chat_format_of_template(const std::string& chat_template, const std::string& bos_token, const std::string& what);

// The plain fallback for models without a chat template: "{system}\n{user}\n{assistant}", with the
// tokenizer's own special tokens (e.g. BERT's [CLS] ... [SEP]).
ChatFormat plain_chat_format();

// The prompt template's own wrapper (the seed's behaviour: its ChatML text for every model).
ChatFormat template_chat_format(const std::string& wrapper);

// ConfigError unless `choice` is one of choose_chat_format's: auto, model, template, plain (--chat).
void check_chat_choice(const std::string& choice);

// `choice`: "auto" (the model's chat template if tokenizer_config.json has one, else plain), "model" (its
// chat template; an error if it has none), "template" or "plain". `tokenizer_config` is the path of the
// model's tokenizer_config.json (it may not exist). ConfigError for another choice.
ChatFormat choose_chat_format(const std::string& choice, const std::string& template_wrapper,
                              const std::string& tokenizer_config);

// Python's str.strip(): leading and trailing Unicode whitespace removed (what Jinja's `trim` does).
std::string python_strip(const std::string& s);

}  // namespace fme::arc
