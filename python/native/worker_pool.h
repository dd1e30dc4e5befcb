// WorkerPool: threads kept between calls of fme._native's copies, for work split into chunks that any thread
// may take. Why not a thread per call: a thread start costs ~50 us here against ~1 ms for a whole 16 MiB
// batch, and a part handed to a thread that starts late is waited for; with chunks claimed one at a time the
// caller takes over whatever a late worker has not begun. Why not OpenMP: its pool does not survive fork()
// (a torch DataLoader's workers), this one is made again in a forked child.
#pragma once
#include <cstddef>
#include <functional>

namespace fme::native {

// Runs body(begin, end) over [0, n) in chunks of `chunk` (the last smaller) on the calling thread and on up
// to threads - 1 of the pool's workers (threads <= 0: one per core); returns when every chunk is done.
// Concurrent calls from several threads are safe: one that finds the pool busy runs on its own thread. body
// must not throw.
void parallel_chunks(size_t n, size_t chunk, int threads, const std::function<void(size_t, size_t)>& body);

// std::thread::hardware_concurrency(), at least 1, read once: glibc reads /sys for it on every call, ~7 us here,
// which was most of what a small batch's gather_rows call cost.
size_t cores();

}  // namespace fme::native
