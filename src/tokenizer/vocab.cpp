// Token vocabulary (see vocab.h): an open-addressing table of entry indices, probed linearly.
#include "tokenizer/vocab.h"

#include <cstring>

namespace fme::tok {

uint64_t hash_bytes(std::string_view s) {
  // 8 bytes at a time with a multiply-xorshift mix: tokens are short, so speed per call matters most.
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0xcbf29ce484222325ull ^ (s.size() * k);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 31);
}

void Vocab::grow() {
  size_t cap = slots_.empty() ? 64 : slots_.size() * 2;
  slots_.assign(cap, 0);
  for (size_t e = 0; e < tokens_.size(); ++e) {
    size_t mask = cap - 1, i = hash_bytes(tokens_[e]) & mask;
    while (slots_[i]) i = (i + 1) & mask;
    slots_[i] = static_cast<int32_t>(e + 1);
  }
}

int32_t Vocab::find(std::string_view token) const {
  if (slots_.empty()) return -1;
  size_t mask = slots_.size() - 1, i = hash_bytes(token) & mask;
  while (int32_t s = slots_[i]) {
    const std::string& t = tokens_[static_cast<size_t>(s - 1)];
    if (t.size() == token.size() && std::memcmp(t.data(), token.data(), t.size()) == 0)
      return ids_[static_cast<size_t>(s - 1)];
    i = (i + 1) & mask;
  }
  return -1;
}

void Vocab::add(std::string_view token, int32_t id) {
  if (id_to_entry_.size() <= static_cast<size_t>(id)) id_to_entry_.resize(static_cast<size_t>(id) + 1, -1);
  if (!slots_.empty()) {
    size_t mask = slots_.size() - 1, i = hash_bytes(token) & mask;
    while (int32_t s = slots_[i]) {
      size_t e = static_cast<size_t>(s - 1);
      if (tokens_[e] == token) {  // re-map an existing token
        if (id_to_entry_[static_cast<size_t>(ids_[e])] == static_cast<int32_t>(e))
          id_to_entry_[static_cast<size_t>(ids_[e])] = -1;
        ids_[e] = id;
        id_to_entry_[static_cast<size_t>(id)] = static_cast<int32_t>(e);
        return;
      }
      i = (i + 1) & mask;
    }
  }
  tokens_.emplace_back(token);
  ids_.push_back(id);
  id_to_entry_[static_cast<size_t>(id)] = static_cast<int32_t>(tokens_.size() - 1);
  if (tokens_.size() * 2 > slots_.size()) {
    grow();
  } else {
    size_t mask = slots_.size() - 1, i = hash_bytes(token) & mask;
    while (slots_[i]) i = (i + 1) & mask;
    slots_[i] = static_cast<int32_t>(tokens_.size());
  }
}

}  // namespace fme::tok
