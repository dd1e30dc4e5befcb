// Fresh (never-touched) anonymous memory and parallel first-touch, for materialising large parameter buffers
// and for measuring the page-fault floor that any "create N bytes" step pays on this kind of VM.
// Leaves out NUMA placement, pinning and file-backed mappings.
#pragma once
#include <cstddef>

namespace fme {

// Owns an anonymous private mapping (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE): pages are allocated on
// first write, so whoever writes first pays the fault. With huge_pages the region is 2 MiB aligned and
// madvise(MADV_HUGEPAGE)'d (a hint: transparent huge pages may still be refused). data() is at least 64-byte
// (in fact page) aligned. Move-only; munmap in the destructor. Throws fme::IoError if mmap fails.
// Page size for a FreshBuffer. kProbe measures which is faster here, now (see FreshBuffer(bytes, PageSize)).
enum class PageSize { kSmall, kHuge, kProbe };

class FreshBuffer {
 public:
  FreshBuffer() = default;
  explicit FreshBuffer(size_t bytes, bool huge_pages = false);
  // kSmall / kHuge: as the constructor above. kProbe: why: which page size first-touches faster depends on
  // the host, not the guest (bare metal and some VMs: huge pages, ~2x; a VM whose balloon hands freed 2 MiB
  // blocks back to the host: 4 KiB pages, ~4x), so it is measured. For bytes >= kProbeMinBytes the mapping
  // is 2 MiB aligned; the first kProbeBytes are first-touched with 4 KiB pages and the next kProbeBytes
  // with huge pages (populate, then a write a page), one thread, timed; the rest is advised for huge pages
  // only if those were >= 1.25x faster. The probed pages stay resident and zero, so the probe's time is
  // mostly faults the buffer's first writer would have taken anyway. Smaller buffers get 4 KiB pages.
  FreshBuffer(size_t bytes, PageSize pages);
  static constexpr size_t kProbeBytes = size_t{32} << 20;
  static constexpr size_t kProbeMinBytes = size_t{1} << 30;
  ~FreshBuffer();
  FreshBuffer(const FreshBuffer&) = delete;
  FreshBuffer& operator=(const FreshBuffer&) = delete;
  FreshBuffer(FreshBuffer&& other) noexcept;
  FreshBuffer& operator=(FreshBuffer&& other) noexcept;

  void* data() const { return data_; }
  size_t size() const { return size_; }
  bool huge_pages() const { return huge_; }  // huge pages advised (for kProbe: the rest, after the probe)
  // The probe's seconds (kProbe on a large buffer; else probe_ran() is false).
  bool probe_ran() const { return probe_small_s_ > 0; }
  double probe_small_seconds() const { return probe_small_s_; }
  double probe_huge_seconds() const { return probe_huge_s_; }

 private:
  void map(size_t bytes, bool aligned_2m);
  void release() noexcept;
  void* data_ = nullptr;
  size_t size_ = 0;
  bool huge_ = false;
  double probe_small_s_ = 0, probe_huge_s_ = 0;
};

// Takes the page faults of the whole pages inside [p, p + bytes) in one system call
// (madvise MADV_POPULATE_WRITE, Linux 5.14+): the kernel allocates and zeroes them without a trap per page,
// about 15-25% cheaper than touching them (bench/memory). Returns false, doing nothing, where the kernel lacks
// it. On pages already resident it still walks the page tables (~200 ns a page), so call it only on memory
// known to be fresh.
bool populate_for_write(void* p, size_t bytes);

// How first_touch takes the faults: kWrite writes one byte a page (a trap per page, what any plain first
// write pays); kPopulate first asks the kernel for each 1 MiB at once (populate_for_write), then writes one
// byte a page — the fault path prepare's fills take, and the cheapest this machine has. Both end with every
// page written once: on a VM the host backs a page only when the guest first accesses it.
enum class TouchMethod { kWrite, kPopulate };

// Makes every 4 KiB page of [p, p + bytes) resident (zero-filled) from n_threads threads (0 = hardware
// concurrency), each taking one contiguous chunk, so the page faults of fresh memory are taken in parallel.
void first_touch(void* p, size_t bytes, int n_threads = 0, TouchMethod method = TouchMethod::kWrite);

}  // namespace fme
