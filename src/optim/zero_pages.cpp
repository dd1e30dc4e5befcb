// Anonymous-mmap backed zero tensors: see zero_pages.h for why (no memset pass, lazy RSS).
#include "optim/zero_pages.h"

#include <ATen/ATen.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace fme {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

size_t page_size() {
  static const size_t p = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Maps `bytes` of fresh zero pages. Large arenas are aligned to 2 MiB and advised MADV_HUGEPAGE so first
// touch faults 2 MiB at a time instead of 4 KiB (512x fewer faults); the advice is best effort.
void* map_zero_pages(size_t bytes, size_t* mapped) {
  const bool huge = bytes >= kHugePage;
  const size_t len = round_up(bytes, huge ? kHugePage : page_size());
  const size_t request = huge ? len + kHugePage : len;
  void* p = ::mmap(nullptr, request, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw IoError("mmap of " + std::to_string(request) + " bytes of optimizer state failed: " +
                  std::strerror(errno));
  }
  char* base = static_cast<char*>(p);
  if (huge) {
    // Trim the unaligned head and the tail so exactly one 2 MiB aligned mapping of `len` bytes remains.
    char* aligned = reinterpret_cast<char*>(round_up(reinterpret_cast<uintptr_t>(base), kHugePage));
    if (aligned > base) ::munmap(base, static_cast<size_t>(aligned - base));
    char* end = aligned + len;
    char* req_end = base + request;
    if (req_end > end) ::munmap(end, static_cast<size_t>(req_end - end));
    base = aligned;
#ifdef MADV_HUGEPAGE
    ::madvise(base, len, MADV_HUGEPAGE);
#endif
  }
  *mapped = len;
  return base;
}

int64_t nbytes_of(at::IntArrayRef shape, at::ScalarType dtype) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("zeroed state tensor: negative dimension " + std::to_string(d));
    n *= d;
  }
  return n * static_cast<int64_t>(c10::elementSize(dtype));
}

}  // namespace

struct PageArena::Mapping {
  void* base = nullptr;
  size_t len = 0;
  ~Mapping() {
    if (base) ::munmap(base, len);
  }
};

at::Tensor zeros_from_fresh_pages(at::IntArrayRef shape, at::ScalarType dtype) {
  const int64_t bytes = nbytes_of(shape, dtype);
  if (bytes == 0) return at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t len = 0;
  void* p = map_zero_pages(static_cast<size_t>(bytes), &len);
  return at::from_blob(
      p, shape, [len](void* q) { ::munmap(q, len); }, at::TensorOptions().dtype(dtype).device(at::kCPU));
}

PageArena::PageArena(const std::vector<Slot>& slots) {
  std::vector<int64_t> offsets(slots.size());
  int64_t total = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const int64_t b = nbytes_of(slots[i].shape, slots[i].dtype);
    total = static_cast<int64_t>(round_up(static_cast<size_t>(total), kAlignment));
    offsets[i] = total;
    total += b;
    payload_bytes_ += b;
  }
  char* base = nullptr;
  if (total > 0) {
    mapping_ = std::make_shared<Mapping>();
    mapping_->base = map_zero_pages(static_cast<size_t>(total), &mapping_->len);
    base = static_cast<char*>(mapping_->base);
  }
  tensors_.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const auto opts = at::TensorOptions().dtype(slots[i].dtype).device(at::kCPU);
    if (nbytes_of(slots[i].shape, slots[i].dtype) == 0) {
      tensors_.push_back(at::empty(slots[i].shape, opts));
      continue;
    }
    std::shared_ptr<Mapping> keep = mapping_;
    tensors_.push_back(at::from_blob(
        base + offsets[i], slots[i].shape, [keep](void*) mutable { keep.reset(); }, opts));
  }
}

const void* PageArena::base() const { return mapping_ ? mapping_->base : nullptr; }

int64_t PageArena::mapped_bytes() const { return mapping_ ? static_cast<int64_t>(mapping_->len) : 0; }

int64_t PageArena::resident_bytes() const {
  if (!mapping_) return 0;
  const size_t ps = page_size();
  std::vector<unsigned char> vec((mapping_->len + ps - 1) / ps);
  if (::mincore(mapping_->base, mapping_->len, vec.data()) != 0) {
    throw IoError(std::string("mincore on optimizer state failed: ") + std::strerror(errno));
  }
  int64_t pages = 0;
  for (unsigned char c : vec) pages += (c & 1);
  return pages * static_cast<int64_t>(ps);
}

}  // namespace fme
