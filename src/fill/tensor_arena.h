// Many CPU tensors carved out of ONE fresh anonymous mapping (fill/fresh_memory.h): the parameters prepare
// builds and the optimizer's state (m, v, momentum) alike. Slot i starts at a 64-byte aligned offset (cache
// line / AVX-512 friendly), so thousands of tensors cost one mmap, not thousands. The pages are zero and
// untouched until first written: state costs no memset pass and no RSS until a step writes it, and an
// initialiser knows it may skip writing zeros. Every tensor keeps the mapping alive (its from_blob deleter
// holds a reference); munmap runs when the arena and all its tensors are gone.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "fill/fresh_memory.h"

namespace fme {

class TensorArena {
 public:
  struct Slot {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
  };
  static constexpr int64_t kAlignment = 64;

  TensorArena() = default;
  // `pages`: as FreshBuffer (kProbe measures which page size first-touches faster here).
  explicit TensorArena(const std::vector<Slot>& slots, PageSize pages = PageSize::kSmall);

  size_t size() const { return tensors_.size(); }
  const at::Tensor& tensor(size_t i) const { return tensors_.at(i); }

  // Number of mappings behind the arena: 1, or 0 when every slot is empty.
  int64_t mapping_count() const { return buffer_ ? 1 : 0; }
  const void* base() const { return buffer_ ? buffer_->data() : nullptr; }
  int64_t mapped_bytes() const { return buffer_ ? static_cast<int64_t>(buffer_->size()) : 0; }
  // The mapping (page size, probe timings); null when every slot is empty.
  const FreshBuffer* buffer() const { return buffer_.get(); }
  // Sum of the slots' element bytes (no alignment padding).
  int64_t payload_bytes() const { return payload_bytes_; }
  // Bytes of the mapping the process has touched (mincore); 0 right after construction.
  int64_t resident_bytes() const;

 private:
  std::shared_ptr<FreshBuffer> buffer_;
  std::vector<at::Tensor> tensors_;
  int64_t payload_bytes_ = 0;
};

}  // namespace fme
