// GPT-2's byte <-> character mapping ("bytes_to_unicode"), used by the ByteLevel pre-tokenizer and decoder:
// every byte maps to one printable character, so any byte string becomes a string of vocabulary symbols.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace fme::tok {

// The UTF-8 encoding of the character that stands for byte b.
std::string_view byte_to_chars(uint8_t b);
// Appends the mapped characters of every byte of s.
void append_byte_level(std::string& out, std::string_view s);
// The byte a character stands for, or -1 when it is not one of the 256 mapped characters.
int char_to_byte(char32_t c);

}  // namespace fme::tok
