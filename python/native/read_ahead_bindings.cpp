// fme._native.read_ahead: asks the kernel to read a mapped array's pages into the page cache ahead of use,
// unless they are there already. The activation stream calls it for the next window's chunks of a shard map.
//
// Why native: madvise(MADV_WILLNEED) looks up every page of the range in the page cache even when all are
// resident, ~30 us per 8 MiB chunk here (a few percent of a shuffled epoch read from the page cache); mincore
// on the mapped range answers in a few us, and the advice is given only when a page is missing. Python's mmap
// module has madvise but no mincore.
#include <sys/mman.h>
#include <unistd.h>

#include <pybind11/numpy.h>

#include <cstdint>
#include <vector>

#include "native.h"

namespace fme::native {
namespace {

bool read_ahead(const py::array& a) {
  if (a.nbytes() == 0) return false;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(a.data()) / page * page;
  const auto end = reinterpret_cast<uintptr_t>(a.data()) + static_cast<uintptr_t>(a.nbytes());
  const size_t length = end - begin;
  py::gil_scoped_release unlocked;
  std::vector<unsigned char> resident((length + page - 1) / page);
  auto* start = reinterpret_cast<void*>(begin);
  if (mincore(start, length, resident.data()) == 0) {
    bool all = true;
    for (unsigned char r : resident) all = all && (r & 1);
    if (all) return false;
  }
  // Advice only: a failure (memory that is not a file map) changes nothing that follows.
  return madvise(start, length, MADV_WILLNEED) == 0;
}

}  // namespace

void bind_read_ahead(py::module_& m) {
  m.def("read_ahead", &read_ahead, py::arg("array"),
        "Asks the kernel to read the pages under `array` (a view of a file map) into the page cache unless all "
        "are resident; True when it advised a read.");
}

}  // namespace fme::native
