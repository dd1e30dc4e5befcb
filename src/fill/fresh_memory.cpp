// FreshBuffer (anonymous mmap) and parallel first-touch. Leaves out NUMA policy and locking pages in memory.
#include "fill/fresh_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
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
  map(bytes, huge_pages);
  // A hint only: THP may be disabled ("never"); the buffer still works with 4 KiB pages.
  if (huge_pages && data_ != nullptr) (void)::madvise(data_, (bytes + kPage - 1) / kPage * kPage, MADV_HUGEPAGE);
}

FreshBuffer::FreshBuffer(size_t bytes, PageSize pages) : size_(bytes) {
  if (pages != PageSize::kProbe) {
    *this = FreshBuffer(bytes, pages == PageSize::kHuge);
    return;
  }
  const bool probe = bytes >= kProbeMinBytes;
  map(bytes, probe);
  if (!probe) return;
  auto* base = static_cast<char*>(data_);
  auto timed_touch = [](char* p, size_t n) {
    const auto t0 = std::chrono::steady_clock::now();
    first_touch(p, n, 1, TouchMethod::kPopulate);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  probe_small_s_ = timed_touch(base, kProbeBytes);
  const bool advised = ::madvise(base + kProbeBytes, kProbeBytes, MADV_HUGEPAGE) == 0;
  probe_huge_s_ = timed_touch(base + kProbeBytes, kProbeBytes);
  if (advised && probe_huge_s_ * 1.25 <= probe_small_s_) {
    const size_t rest = (bytes + kPage - 1) / kPage * kPage - 2 * kProbeBytes;
    huge_ = ::madvise(base + 2 * kProbeBytes, rest, MADV_HUGEPAGE) == 0;
  }
}

// Maps `bytes` (rounded up to whole pages) of fresh anonymous memory into data_; with aligned_2m the
// mapping starts on a 2 MiB boundary (over-map by 2 MiB and trim), so huge pages can back all of it.
void FreshBuffer::map(size_t bytes, bool aligned_2m) {
  if (bytes == 0) return;
  const size_t mapped = (bytes + kPage - 1) / kPage * kPage;
  const size_t extra = aligned_2m ? kHugePage : 0;
  void* p = ::mmap(nullptr, mapped + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (p == MAP_FAILED) {
    throw IoError("FreshBuffer: mmap of " + std::to_string(bytes) + " bytes failed: " + std::strerror(errno));
  }
  auto* base = static_cast<char*>(p);
  if (aligned_2m) {
    const uintptr_t a = (reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
    char* aligned = reinterpret_cast<char*>(a);
    const size_t head = static_cast<size_t>(aligned - base);
    if (head > 0) ::munmap(base, head);
    const size_t tail = extra - head;
    if (tail > 0) ::munmap(aligned + mapped, tail);
    base = aligned;
  }
  data_ = base;
}

FreshBuffer::~FreshBuffer() { release(); }

FreshBuffer::FreshBuffer(FreshBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      huge_(std::exchange(other.huge_, false)),
      probe_small_s_(std::exchange(other.probe_small_s_, 0)),
      probe_huge_s_(std::exchange(other.probe_huge_s_, 0)) {}

FreshBuffer& FreshBuffer::operator=(FreshBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    huge_ = std::exchange(other.huge_, false);
    probe_small_s_ = std::exchange(other.probe_small_s_, 0);
    probe_huge_s_ = std::exchange(other.probe_huge_s_, 0);
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
