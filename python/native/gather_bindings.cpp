// fme._native.gather_rows: copies rows picked from several 2-D arrays (a run's memory-mapped shards) into one
// batch, in any order; the shuffled activation stream (python/fme/stream.py) hands out each batch this way.
//
// Why native: numpy's take of scattered 4 KiB rows from a map runs at ~40% of a sequential copy (each row is a
// cold page the hardware prefetcher has not seen coming). Here the start of the row a few places ahead is
// prefetched while the current one is copied, and the batch is split over threads, so a shuffled batch costs
// about what a sequential one does (bench/python/bench_stream.py). The GIL is released while copying.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "native.h"

namespace fme::native {
namespace {

// The row this many places ahead has its first two cache lines prefetched while the current one is copied:
// that starts the hardware's stream prefetcher on it, which fetches the rest. Measured on an EPYC (Zen 5) for
// 4 KiB rows from a page-cache map, 2 threads: 20-22 GB/s at 4-16 ahead, the speed of a sequential memcpy;
// prefetching every line of the row instead gave 16 GB/s (it floods the miss queues), none 15.
constexpr size_t kPrefetchAhead = 8;
constexpr size_t kPrefetchBytes = 128;
// Each thread copies at least this much (a thread start costs ~50 us, about 1 MB of copying).
constexpr size_t kMinBytesPerThread = size_t{4} << 20;

struct Source {
  const uint8_t* data;
  int64_t rows;
};

struct Job {
  std::vector<Source> sources;
  const int32_t* which;
  const int64_t* rows;
  uint8_t* out;
  size_t row_bytes;  // of a source row
  bool widen;        // bfloat16 (uint16) rows to float32 (uint32) bits
};

const uint8_t* row_at(const Job& j, size_t i) {
  const Source& s = j.sources[static_cast<size_t>(j.which[i])];
  return s.data + static_cast<size_t>(j.rows[i]) * j.row_bytes;
}

void prefetch_row_start(const uint8_t* p, size_t bytes) {
  for (size_t b = 0; b < std::min(bytes, kPrefetchBytes); b += 64) __builtin_prefetch(p + b, 0, 3);
}

void copy_range(const Job& j, size_t begin, size_t end) {
  const size_t out_row = j.widen ? 2 * j.row_bytes : j.row_bytes;
  for (size_t i = begin; i < end; ++i) {
    if (i + kPrefetchAhead < end) prefetch_row_start(row_at(j, i + kPrefetchAhead), j.row_bytes);
    const uint8_t* src = row_at(j, i);
    uint8_t* dst = j.out + i * out_row;
    if (!j.widen) {
      std::memcpy(dst, src, j.row_bytes);
    } else {  // bfloat16 is the top half of a float32
      const size_t n = j.row_bytes / 2;
      auto* d = reinterpret_cast<uint32_t*>(dst);
      for (size_t e = 0; e < n; ++e) {
        uint16_t h;
        std::memcpy(&h, src + 2 * e, 2);  // the map's rows need not be 2-aligned in general
        d[e] = static_cast<uint32_t>(h) << 16;
      }
    }
  }
}

void gather_rows(const std::vector<py::array>& sources, const py::array_t<int32_t, py::array::c_style>& which,
                 const py::array_t<int64_t, py::array::c_style>& rows, py::array& out, bool widen, int threads) {
  if (which.ndim() != 1 || rows.ndim() != 1 || which.shape(0) != rows.shape(0))
    throw py::value_error("gather_rows: which and rows must be 1-D arrays of the same length");
  const size_t n = static_cast<size_t>(rows.shape(0));
  if (!(out.flags() & py::array::c_style) || !out.writeable() || out.ndim() < 1 ||
      static_cast<size_t>(out.shape(0)) != n)
    throw py::value_error("gather_rows: out must be a writeable C-contiguous array of " + std::to_string(n) + " rows");
  Job job{{}, which.data(), rows.data(), static_cast<uint8_t*>(out.mutable_data()), 0, widen};
  size_t row_bytes = 0;
  for (size_t k = 0; k < sources.size(); ++k) {
    const py::array& s = sources[k];
    if (!(s.flags() & py::array::c_style) || s.ndim() < 1)
      throw py::value_error("gather_rows: source " + std::to_string(k) + " is not a C-contiguous array");
    if (s.shape(0)) {  // an empty source has no rows to size
      const size_t rb = static_cast<size_t>(s.nbytes() / s.shape(0));
      if (row_bytes && rb != row_bytes) throw py::value_error("gather_rows: the sources' rows differ in size");
      row_bytes = rb;
    }
    if (widen && s.itemsize() != 2) throw py::value_error("gather_rows: widen needs 2-byte (bfloat16) sources");
    job.sources.push_back({static_cast<const uint8_t*>(s.data()), static_cast<int64_t>(s.shape(0))});
  }
  const size_t out_row = n ? static_cast<size_t>(out.nbytes()) / n : 0;
  if (n && row_bytes * (widen ? 2 : 1) != out_row)
    throw py::value_error("gather_rows: out's rows are " + std::to_string(out_row) + " bytes, the sources' " +
                          std::to_string(row_bytes * (widen ? 2 : 1)));
  for (size_t i = 0; i < n; ++i) {  // every index checked before any byte is copied: no read outside a map
    const int32_t w = job.which[i];
    if (w < 0 || static_cast<size_t>(w) >= job.sources.size() || job.rows[i] < 0 ||
        job.rows[i] >= job.sources[static_cast<size_t>(w)].rows)
      throw py::index_error("gather_rows: row " + std::to_string(job.rows[i]) + " of source " + std::to_string(w) +
                            " is out of range");
  }
  job.row_bytes = row_bytes;
  if (n == 0 || row_bytes == 0) return;

  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t wanted = threads > 0 ? static_cast<size_t>(threads) : cores;
  const size_t workers = std::max<size_t>(1, std::min({wanted, cores, n, n * out_row / kMinBytesPerThread}));
  py::gil_scoped_release unlocked;
  std::vector<std::thread> pool;
  auto part = [&](size_t t) { return n * t / workers; };
  size_t started = 1;
  for (; started < workers; ++started) {
    try {
      pool.emplace_back([&job, b = part(started), e = part(started + 1)] { copy_range(job, b, e); });
    } catch (const std::system_error&) {
      break;  // no more threads to be had: this one copies the rest
    }
  }
  copy_range(job, 0, part(1));
  if (started < workers) copy_range(job, part(started), n);
  for (auto& t : pool) t.join();
}

}  // namespace

void bind_gather(py::module_& m) {
  m.def("gather_rows", &gather_rows, py::arg("sources"), py::arg("which"), py::arg("rows"), py::arg("out"),
        py::arg("widen") = false, py::arg("threads") = 0,
        "out[i] = sources[which[i]][rows[i]] for every i (rows of C-contiguous arrays; with widen, bfloat16 "
        "uint16 rows become float32 bits). threads=0: up to one per core. IndexError before any copy when an "
        "index is out of range.");
}

}  // namespace fme::native
