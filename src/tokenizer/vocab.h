// A token vocabulary: string -> id lookup by string_view (no allocation per lookup, which std::unordered_map
// cannot do in C++17) and a dense id -> string table for decoding.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fme::tok {

// A fast non-cryptographic hash of a byte string (used by the vocabulary and the BPE word cache).
uint64_t hash_bytes(std::string_view s);

class Vocab {
 public:
  // Adds or re-maps `token` to `id` (0 <= id < 2^24, checked by the caller).
  void add(std::string_view token, int32_t id);
  // Id of `token`, or -1.
  int32_t find(std::string_view token) const;
  // Token of `id`, or nullptr.
  const std::string* token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= id_to_entry_.size()) return nullptr;
    int32_t e = id_to_entry_[static_cast<size_t>(id)];
    return e < 0 ? nullptr : &tokens_[static_cast<size_t>(e)];
  }
  size_t size() const { return tokens_.size(); }
  // Max id + 1 (0 when empty).
  int64_t id_space() const { return static_cast<int64_t>(id_to_entry_.size()); }

 private:
  void grow();
  std::vector<std::string> tokens_;
  std::vector<int32_t> ids_;          // ids_[e]: id of tokens_[e]
  std::vector<int32_t> slots_;        // open addressing: entry index + 1, 0 = empty
  std::vector<int32_t> id_to_entry_;  // -1 = no token
};

}  // namespace fme::tok
