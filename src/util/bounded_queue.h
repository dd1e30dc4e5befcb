// A blocking, bounded multi-producer/multi-consumer queue that connects pipeline stages (read -> tokenize ->
// run model -> write shard). The bound gives back-pressure so a fast stage cannot fill memory ahead of a slow
// one; close() ends a stream cleanly and fail() lets a failing stage stop every other stage promptly.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

namespace fme {

template <class T>
class BoundedQueue {
 public:
  // capacity must be at least 1: a zero-capacity queue would block every push forever.
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {
    if (capacity_ == 0) throw std::invalid_argument("BoundedQueue: capacity must be at least 1");
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Blocks while the queue is full. Returns false (and drops the item) once the queue is closed or failed,
  // which tells the producer to stop.
  bool push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_ || closed_ || error_; });
    if (closed_ || error_) return false;
    items_.push_back(std::move(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  // Blocks while the queue is empty. Returns nullopt once the queue is closed and drained, or at once
  // after fail() (queued items are abandoned: the run is failing anyway).
  std::optional<T> pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_ || error_; });
    if (error_ || items_.empty()) return std::nullopt;
    std::optional<T> out(std::move(items_.front()));
    items_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    return out;
  }

  // No more pushes; consumers still drain what is queued. Idempotent.
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  // Records the first error and wakes everyone; later errors are ignored so the root cause is kept.
  void fail(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = e ? e : std::make_exception_ptr(std::runtime_error("BoundedQueue: failed"));
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  // The error passed to fail(), or null. A stage that saw push() == false or pop() == nullopt checks this
  // to tell a clean end from a failure, and rethrows it.
  std::exception_ptr error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
  std::exception_ptr error_;
};

}  // namespace fme
