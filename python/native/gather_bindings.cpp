// fme._native.gather_rows: copies rows picked from several 2-D arrays (a run's memory-mapped shards) into one
// batch, in any order; the shuffled activation stream (python/fme/stream.py) hands out each batch this way.
//
// Why native: numpy's take of scattered 4 KiB rows from a map runs at ~40% of a sequential copy (each row is a
// cold page the hardware prefetcher has not seen coming). Here several rows are copied at once, line by line,
// with the rows ahead prefetched, and the batch is split over threads, so a shuffled batch costs about what a
// sequential one does (bench/python/bench_stream.py). The GIL is released while copying.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "native.h"
#include "worker_pool.h"

namespace fme::native {
namespace {

// Rows are copied kStreams at a time, a cache line of each in turn, so that the cold rows' misses overlap: a
// single row's lines arrive one after another as the hardware's stream prefetcher ramps up on it, which
// leaves most of the core's miss slots idle. While a group is copied, the next group's rows are prefetched
// line for line (prefetchnta: they are read once), so they are on their way a group ahead. Measured in
// Python on an EPYC (Zen 5, 2 cores), 4 KiB rows of a fresh 1 GiB page-cache run in random order, batches of
// 4096 rows, best of 8 interleaved rounds, as a ratio to numpy's sequential copyto sweep in the same rounds:
// 6 streams 1.16-1.20; 5 or 7 streams 1.08-1.13; 4 or 8 streams 0.98-1.08; 16 streams 0.64; 6 streams two
// groups ahead 1.10; prefetcht1/t2 hints 0.95-1.10; without the group prefetch (8 streams, the first two lines
// of the rows 16 places ahead prefetched) 0.71-0.88.
constexpr size_t kStreams = 6;
constexpr size_t kLine = 64;
// A thread takes rows in chunks of up to kChunkBytes (split evenly over the threads when the batch is smaller),
// one chunk at a time: a thread that runs slower (this VM's second vCPU is at times shared) takes fewer. Each
// chunk's first group is prefetched as it starts. Measured as above, in a phase where the second vCPU lagged:
// 2 MiB chunks 0.97-1.08x the sweep, 8 MiB ones 0.84-1.08x, 1 MiB ones 0.91-1.05x.
constexpr size_t kChunkBytes = size_t{2} << 20;
// Each thread copies at least this much (waking a pool worker costs ~10-50 us, up to 1 MB of copying).
constexpr size_t kMinBytesPerThread = size_t{1} << 20;

struct Source {
  const uint8_t* data;
  int64_t rows;
};

struct Job {
  std::vector<Source> sources;
  const int32_t* which;
  const int64_t* rows;
  uint8_t* out;
  size_t n;          // rows in all (a thread's chunk prefetches past its end: it likely copies the next one too)
  size_t row_bytes;  // of a source row
  bool widen;        // bfloat16 (uint16) rows to float32 (uint32) bits
};

const uint8_t* row_at(const Job& j, size_t i) {
  const Source& s = j.sources[static_cast<size_t>(j.which[i])];
  return s.data + static_cast<size_t>(j.rows[i]) * j.row_bytes;
}

// bytes of a source row from src to dst, BF16 (uint16) widened to float32 (uint32) bits when widen.
inline void copy_piece(uint8_t* dst, const uint8_t* src, size_t bytes, bool widen) {
  if (!widen) {
    std::memcpy(dst, src, bytes);
    return;
  }
  auto* d = reinterpret_cast<uint32_t*>(dst);
  for (size_t e = 0; e < bytes / 2; ++e) {  // bfloat16 is the top half of a float32
    uint16_t h;
    std::memcpy(&h, src + 2 * e, 2);  // the map's rows need not be 2-aligned in general
    d[e] = static_cast<uint32_t>(h) << 16;
  }
}

void copy_range(const Job& j, size_t begin, size_t end) {
  const size_t scale = j.widen ? 2 : 1, out_row = scale * j.row_bytes;
  const size_t lines = j.row_bytes / kLine * kLine;  // the rest of a row (under a line) is copied after
  for (size_t k = 0; k < kStreams && begin + k < end; ++k) {  // later groups are prefetched by the one before
    const uint8_t* row = row_at(j, begin + k);
    for (size_t o = 0; o < j.row_bytes; o += kLine) __builtin_prefetch(row + o, 0, 0);
  }
  for (size_t i = begin; i < end;) {
    // Consecutive rows of one source (an unshuffled stream's whole batch) are one sequential copy, which the
    // hardware prefetcher follows best.
    size_t run = 1;
    while (i + run < end && j.which[i + run] == j.which[i] && j.rows[i + run] == j.rows[i] + static_cast<int64_t>(run))
      ++run;
    if (run >= kStreams) {
      copy_piece(j.out + i * out_row, row_at(j, i), run * j.row_bytes, j.widen);
      i += run;
      continue;
    }
    const size_t m = std::min(kStreams, end - i);
    const uint8_t* src[kStreams];
    for (size_t k = 0; k < m; ++k) src[k] = row_at(j, i + k);
    // The next group (past this thread's chunk too: the same thread likely copies the next chunk).
    const bool ahead = i + m + kStreams <= j.n;
    const uint8_t* next[kStreams];
    if (ahead)
      for (size_t k = 0; k < kStreams; ++k) next[k] = row_at(j, i + m + k);
    uint8_t* dst = j.out + i * out_row;
    if (m == kStreams && ahead && !j.widen) {  // the common case, with the stream count known to the compiler
      for (size_t o = 0; o < lines; o += kLine) {
        for (size_t k = 0; k < kStreams; ++k) std::memcpy(dst + k * out_row + o, src[k] + o, kLine);
        for (size_t k = 0; k < kStreams; ++k) __builtin_prefetch(next[k] + o, 0, 0);
      }
    } else {
      for (size_t o = 0; o < lines; o += kLine) {
        for (size_t k = 0; k < m; ++k) copy_piece(dst + k * out_row + scale * o, src[k] + o, kLine, j.widen);
        if (ahead)
          for (size_t k = 0; k < kStreams; ++k) __builtin_prefetch(next[k] + o, 0, 0);
      }
    }
    if (lines < j.row_bytes)
      for (size_t k = 0; k < m; ++k)
        copy_piece(dst + k * out_row + scale * lines, src[k] + lines, j.row_bytes - lines, j.widen);
    i += m;
  }
}

using Int64s = py::array_t<int64_t, py::array::c_style>;

void gather_rows(const std::vector<py::array>& sources, const py::array_t<int32_t, py::array::c_style>& which,
                 const Int64s& rows, py::array& out, bool widen, int threads, const std::optional<Int64s>& order) {
  if (which.ndim() != 1 || rows.ndim() != 1 || which.shape(0) != rows.shape(0))
    throw py::value_error("gather_rows: which and rows must be 1-D arrays of the same length");
  if (order && order->ndim() != 1) throw py::value_error("gather_rows: order must be a 1-D array");
  const size_t n = static_cast<size_t>(order ? order->shape(0) : rows.shape(0));
  // With an order, the batch's own (which, row) pairs are looked up first: a few us for a batch, and the copy
  // below stays one loop.
  std::vector<int32_t> picked_which;
  std::vector<int64_t> picked_rows;
  if (order) {
    picked_which.resize(n);
    picked_rows.resize(n);
    const int64_t* o = order->data();
    const auto table = static_cast<int64_t>(rows.shape(0));
    for (size_t i = 0; i < n; ++i) {
      if (o[i] < 0 || o[i] >= table)
        throw py::index_error("gather_rows: order " + std::to_string(o[i]) + " is outside the table's " +
                              std::to_string(table) + " entries");
      picked_which[i] = which.data()[o[i]];
      picked_rows[i] = rows.data()[o[i]];
    }
  }
  if (!(out.flags() & py::array::c_style) || !out.writeable() || out.ndim() < 1 ||
      static_cast<size_t>(out.shape(0)) != n)
    throw py::value_error("gather_rows: out must be a writeable C-contiguous array of " + std::to_string(n) + " rows");
  Job job{{}, order ? picked_which.data() : which.data(), order ? picked_rows.data() : rows.data(),
          static_cast<uint8_t*>(out.mutable_data()), n, 0, widen};
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

  const size_t most = std::max<size_t>(1, n * out_row / kMinBytesPerThread);
  const size_t participants = std::min({most, cores(), threads > 0 ? static_cast<size_t>(threads) : cores()});
  const size_t even = (n + participants - 1) / participants;
  const size_t chunk = std::max<size_t>(1, std::min(even, kChunkBytes / out_row));
  py::gil_scoped_release unlocked;
  parallel_chunks(n, chunk, static_cast<int>(participants), [&job](size_t b, size_t e) { copy_range(job, b, e); });
}

}  // namespace

void bind_gather(py::module_& m) {
  m.def("gather_rows", &gather_rows, py::arg("sources"), py::arg("which"), py::arg("rows"), py::arg("out"),
        py::arg("widen") = false, py::arg("threads") = 0, py::arg("order") = py::none(),
        "out[i] = sources[which[i]][rows[i]] for every i (rows of C-contiguous arrays; with widen, bfloat16 "
        "uint16 rows become float32 bits); with order (int64), out[i] = sources[which[k]][rows[k]], k = order[i]. "
        "threads=0: up to one per core. IndexError before any copy when an index is out of range.");
}

}  // namespace fme::native
