// GPT-2 byte <-> character mapping (see byte_level.h). Hand-written because it is a fixed 256-entry table
// defined by GPT-2's bytes_to_unicode(), not something a Unicode library provides.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace fme::tok {
namespace {

struct Tables {
  std::array<std::string, 256> to_chars;
  std::array<int16_t, 512> to_byte;  // every mapped character is below U+0200
  Tables() {
    to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(to_chars[static_cast<size_t>(b)], c);
      to_byte[c] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

std::string_view byte_to_chars(uint8_t b) { return tables().to_chars[b]; }

void append_byte_level(std::string& out, std::string_view s) {
  const Tables& t = tables();
  for (unsigned char b : s) out += t.to_chars[b];
}

int char_to_byte(char32_t c) { return c < 512 ? tables().to_byte[c] : -1; }

}  // namespace fme::tok
