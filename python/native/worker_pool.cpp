#include "worker_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

namespace fme::native {
namespace {

class WorkerPool {
 public:
  explicit WorkerPool(size_t workers) {
    for (size_t t = 0; t < workers; ++t) {
      try {
        std::thread(&WorkerPool::work, this).detach();  // the pool lives until the process ends (never freed)
        ++workers_;
      } catch (const std::system_error&) {
        break;  // no more threads to be had: the callers do the rest
      }
    }
  }

  size_t workers() const { return workers_; }

  // Caller side of parallel_chunks; false (nothing done) when another call holds the pool.
  bool run(size_t n, size_t chunk, size_t helpers, const std::function<void(size_t, size_t)>& body) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lk(m_);
      body_ = &body;
      n_ = n;
      chunk_ = chunk;
      next_.store(0, std::memory_order_relaxed);
      seats_ = helpers;
      open_ = true;
      ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock<std::mutex> lk(m_);
    open_ = false;  // a worker that wakes from now on finds nothing to join
    done_.wait(lk, [&] { return joined_ == 0; });
    return true;
  }

 private:
  void drain() {
    for (;;) {
      const size_t b = next_.fetch_add(chunk_, std::memory_order_relaxed);
      if (b >= n_) return;
      (*body_)(b, std::min(n_, b + chunk_));
    }
  }

  void work() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      wake_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (!open_ || seats_ == 0) continue;  // the call ended before this worker woke, or has its helpers
      --seats_;
      ++joined_;
      lk.unlock();
      drain();
      lk.lock();
      if (--joined_ == 0) done_.notify_one();
    }
  }

  size_t workers_ = 0;
  std::mutex busy_;  // held by the call using the pool
  std::mutex m_;     // guards what follows
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool open_ = false;
  size_t seats_ = 0, joined_ = 0;
  const std::function<void(size_t, size_t)>* body_ = nullptr;
  size_t n_ = 0, chunk_ = 1;
  std::atomic<size_t> next_{0};
};

// The process's pool, made on first use with a worker per core but one; made again in a forked child, where
// the parent's workers do not exist (the old one is left as it is: its mutexes may be held by them).
WorkerPool* pool() {
  static std::mutex m;
  static WorkerPool* p = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lk(m);
  if (p == nullptr || owner != getpid()) {
    p = new WorkerPool(cores() - 1);
    owner = getpid();
  }
  return p;
}

}  // namespace

size_t cores() {
  static const size_t n = std::max(1u, std::thread::hardware_concurrency());
  return n;
}

void parallel_chunks(size_t n, size_t chunk, int threads, const std::function<void(size_t, size_t)>& body) {
  chunk = std::max<size_t>(1, chunk);
  const size_t chunks = (n + chunk - 1) / chunk;
  const size_t wanted = std::min({threads > 0 ? static_cast<size_t>(threads) : cores(), cores(), chunks});
  if (wanted > 1) {
    WorkerPool* p = pool();
    if (p->workers() > 0 && p->run(n, chunk, std::min(wanted - 1, p->workers()), body)) return;
  }
  for (size_t b = 0; b < n; b += chunk) body(b, std::min(n, b + chunk));
}

}  // namespace fme::native
