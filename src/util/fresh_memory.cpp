// FreshBuffer (anonymous mmap) and parallel first-touch. Leaves out NUMA policy and locking pages in memory.
#include "util/fresh_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "util/error.h"

namespace fme {
namespace {
constexpr size_t kPage = 4096;
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

FreshBuffer::FreshBuffer(size_t bytes, bool huge_pages) : size_(bytes), huge_(huge_pages) {
  if (bytes == 0) return;
  const size_t mapped = (bytes + kPage - 1) / kPage * kPage;
  // For huge pages, over-map by 2 MiB and trim so the region starts on a huge-page boundary; otherwise the
  // kernel can only back the aligned interior with huge pages.
  const size_t extra = huge_pages ? kHugePage : 0;
  void* p = ::mmap(nullptr, mapped + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (p == MAP_FAILED) {
    throw IoError("FreshBuffer: mmap of " + std::to_string(bytes) + " bytes failed: " + std::strerror(errno));
  }
  auto* base = static_cast<char*>(p);
  if (huge_pages) {
    const uintptr_t a = (reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
    char* aligned = reinterpret_cast<char*>(a);
    const size_t head = static_cast<size_t>(aligned - base);
    if (head > 0) ::munmap(base, head);
    const size_t tail = extra - head;
    if (tail > 0) ::munmap(aligned + mapped, tail);
    base = aligned;
    // A hint only: THP may be disabled ("never"); the buffer still works with 4 KiB pages.
    (void)::madvise(base, mapped, MADV_HUGEPAGE);
  }
  data_ = base;
}

FreshBuffer::~FreshBuffer() { release(); }

FreshBuffer::FreshBuffer(FreshBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      huge_(std::exchange(other.huge_, false)) {}

FreshBuffer& FreshBuffer::operator=(FreshBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    huge_ = std::exchange(other.huge_, false);
  }
  return *this;
}

void FreshBuffer::release() noexcept {
  if (data_ != nullptr) ::munmap(data_, (size_ + kPage - 1) / kPage * kPage);
  data_ = nullptr;
  size_ = 0;
}

bool populate_for_write(void* p, size_t bytes) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // linux/mman.h since 5.14; older libc headers lack the name
#endif
  static std::atomic<bool> unsupported{false};
  if (unsupported.load(std::memory_order_relaxed)) return false;
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + kPage - 1) & ~(uintptr_t{kPage} - 1);
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(uintptr_t{kPage} - 1);
  if (hi <= lo) return true;
  if (::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_WRITE) == 0) return true;
  if (errno == EINVAL) unsupported.store(true, std::memory_order_relaxed);  // kernel < 5.14
  return false;  // ENOMEM and the like: the writes that follow fault the pages in (or fail) as usual
}

void first_touch(void* p, size_t bytes, int n_threads, TouchMethod method) {
  if (bytes == 0) return;
  auto* base = static_cast<volatile char*>(p);
  size_t threads = n_threads > 0 ? static_cast<size_t>(n_threads) : std::thread::hardware_concurrency();
  const size_t pages = (bytes + kPage - 1) / kPage;
  threads = std::clamp<size_t>(std::min(threads, pages), 1, 1024);
  // One byte per page is enough: the fault allocates and zeroes the whole page. The last byte of the range
  // is touched too in case p is not page aligned.
  auto run = [&](size_t first_page, size_t end_page) {
    // kPopulate: 1 MiB (256 pages) at a time, as prepare's fills do, then the writes. The writes are still
    // needed: on a VM the guest kernel may map a known-zero page without touching it, and the host's own fault
    // on that page comes with the first access.
    const size_t step = method == TouchMethod::kPopulate ? 256 : end_page - first_page;
    for (size_t a = first_page; a < end_page; a += step) {
      const size_t b = std::min(end_page, a + step);
      if (method == TouchMethod::kPopulate) {
        populate_for_write(const_cast<char*>(base) + a * kPage, std::min(b * kPage, bytes) - a * kPage);
      }
      for (size_t pg = a; pg < b; ++pg) base[std::min(pg * kPage, bytes - 1)] = 0;
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(run, pages * t / threads, pages * (t + 1) / threads);
  run(0, pages / threads);
  for (auto& th : pool) th.join();
  base[bytes - 1] = 0;
}

}  // namespace fme
