// libFuzzer entry point for the tokenizer: arbitrary bytes as tokenizer.json; when they load, encode and
// decode a short text (including an invalid-UTF-8 one). fme::Error is the expected way to refuse input;
// anything else (a crash, another exception, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string json(reinterpret_cast<const char*>(data), size);
  try {
    fme::Tokenizer tok = fme::Tokenizer::from_json(json, "fuzz-input");
    static const std::string texts[] = {"Hello, world! <|im_start|>user\n caf\xC3\xA9  123 \xF0\x9F\xA4\x97",
                                        "", "   ", "[CLS] a##b [SEP]", "bad \xFF utf8"};
    for (const auto& text : texts) {
      try {
        auto ids = tok.encode(text, true);
        tok.decode(ids, false);
        tok.decode(ids, true);
      } catch (const fme::Error&) {
      }
    }
    tok.vocab_size();
    tok.id_to_token(0);
  } catch (const fme::Error&) {
  }
  return 0;
}
