#include "fill/tensor_arena.h"

#include <ATen/ATen.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace fme {
namespace {

int64_t nbytes_of(const std::vector<int64_t>& shape, at::ScalarType dtype) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("arena tensor: negative dimension " + std::to_string(d));
    n *= d;
  }
  return n * static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

}  // namespace

TensorArena::TensorArena(const std::vector<Slot>& slots, PageSize pages) {
  std::vector<int64_t> offsets(slots.size());
  int64_t total = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const int64_t b = nbytes_of(slots[i].shape, slots[i].dtype);
    total = round_up(total, kAlignment);
    offsets[i] = total;
    total += b;
    payload_bytes_ += b;
  }
  if (total > 0) buffer_ = std::make_shared<FreshBuffer>(static_cast<size_t>(total), pages);
  auto* base = buffer_ ? static_cast<char*>(buffer_->data()) : nullptr;
  tensors_.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const auto opts = at::TensorOptions().dtype(slots[i].dtype).device(at::kCPU);
    if (nbytes_of(slots[i].shape, slots[i].dtype) == 0) {
      tensors_.push_back(at::empty(slots[i].shape, opts));
      continue;
    }
    std::shared_ptr<FreshBuffer> keep = buffer_;
    tensors_.push_back(at::from_blob(base + offsets[i], slots[i].shape, [keep](void*) mutable { keep.reset(); }, opts));
  }
}

int64_t TensorArena::resident_bytes() const {
  if (!buffer_) return 0;
  const auto ps = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((buffer_->size() + ps - 1) / ps);
  if (::mincore(buffer_->data(), buffer_->size(), vec.data()) != 0)
    throw IoError(std::string("mincore on an arena failed: ") + std::strerror(errno));
  int64_t n = 0;
  for (unsigned char c : vec) n += (c & 1);
  return n * static_cast<int64_t>(ps);
}

}  // namespace fme
