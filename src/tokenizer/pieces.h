// A list of string pieces stored in one buffer: what the pre-tokenizers produce and the model consumes.
// One buffer instead of a vector of strings keeps pre-tokenization free of per-piece allocations.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fme::tok {

class Pieces {
 public:
  void clear() {
    buf_.clear();
    ends_.clear();
  }
  // Adds a piece (empty pieces are dropped, as HF drops empty splits). s must not point into this list.
  void add(std::string_view s) {
    if (s.empty()) return;
    buf_.append(s);
    ends_.push_back(buf_.size());
  }
  // Building a piece in place: append to buffer(), then close().
  std::string& buffer() { return buf_; }
  void close() {
    if (buf_.size() > (ends_.empty() ? 0 : ends_.back())) ends_.push_back(buf_.size());
  }
  size_t size() const { return ends_.size(); }
  std::string_view operator[](size_t i) const {
    size_t start = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(buf_).substr(start, ends_[i] - start);
  }

 private:
  std::string buf_;
  std::vector<size_t> ends_;
};

}  // namespace fme::tok
