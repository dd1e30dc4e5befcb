// Zeroed tensors from fresh anonymous pages: the kernel hands out zero-filled pages lazily on first touch,
// so optimizer state (m, v, momentum) costs no memset pass and no RSS until the first step writes it.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace fme {

// One anonymous private mapping (mmap), unmapped when the last tensor viewing it is gone.
// Throws IoError when the OS refuses the mapping.
at::Tensor zeros_from_fresh_pages(at::IntArrayRef shape, at::ScalarType dtype);

// Many zeroed CPU tensors carved out of ONE anonymous mapping: slot i starts at a 64-byte aligned offset
// (cache line / AVX-512 friendly), so an optimizer with thousands of parameters makes one mmap, not
// thousands. Every tensor keeps the mapping alive (its from_blob deleter holds a reference); munmap runs
// when the arena and all its tensors are gone.
class PageArena {
 public:
  struct Slot {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
  };
  static constexpr int64_t kAlignment = 64;

  PageArena() = default;
  explicit PageArena(const std::vector<Slot>& slots);

  size_t size() const { return tensors_.size(); }
  const at::Tensor& tensor(size_t i) const { return tensors_.at(i); }

  // Number of mappings behind the arena: 1, or 0 when every slot is empty.
  int64_t mapping_count() const { return mapping_ ? 1 : 0; }
  const void* base() const;
  int64_t mapped_bytes() const;
  // Sum of the slots' element bytes (no alignment padding).
  int64_t payload_bytes() const { return payload_bytes_; }
  // Bytes of the mapping the process has touched (mincore); 0 right after construction.
  int64_t resident_bytes() const;

 private:
  struct Mapping;
  std::shared_ptr<Mapping> mapping_;
  std::vector<at::Tensor> tensors_;
  int64_t payload_bytes_ = 0;
};

}  // namespace fme
