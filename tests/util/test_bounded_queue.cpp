// Tests of util/bounded_queue: ordering, many producers and consumers, close semantics, back-pressure at
// capacity, and fail() stopping every stage blocked on either end.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "util/bounded_queue.h"

namespace {

using std::chrono::milliseconds;

TEST(BoundedQueue, FifoSingleThread) {
  fme::BoundedQueue<int> q(4);
  EXPECT_TRUE(q.push(1));
  EXPECT_TRUE(q.push(2));
  EXPECT_TRUE(q.push(3));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.pop(), 1);
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), 3);
}

TEST(BoundedQueue, ZeroCapacityIsRejected) {
  EXPECT_THROW(fme::BoundedQueue<int>(0), std::invalid_argument);
}

TEST(BoundedQueue, MoveOnlyItems) {
  fme::BoundedQueue<std::unique_ptr<int>> q(2);
  EXPECT_TRUE(q.push(std::make_unique<int>(7)));
  auto v = q.pop();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(**v, 7);
}

TEST(BoundedQueue, ManyProducersManyConsumersDeliverEveryItemOnce) {
  constexpr int kProducers = 4, kConsumers = 3, kPerProducer = 5000;
  fme::BoundedQueue<int> q(8);
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::atomic<int> producers_left{kProducers};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) ASSERT_TRUE(q.push(p * kPerProducer + i));
      // The last producer out closes the queue, as a pipeline's fan-in would.
      if (--producers_left == 0) q.close();
    });
  }
  std::atomic<long long> sum{0};
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      while (auto v = q.pop()) {
        seen[static_cast<size_t>(*v)]++;
        sum += *v;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i;
  long long n = kProducers * kPerProducer;
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
  EXPECT_EQ(q.error(), nullptr);
}

TEST(BoundedQueue, PerProducerOrderIsKept) {
  fme::BoundedQueue<int> q(3);
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) q.push(i);
    q.close();
  });
  int expect = 0;
  while (auto v = q.pop()) EXPECT_EQ(*v, expect++);
  producer.join();
  EXPECT_EQ(expect, 1000);
}

TEST(BoundedQueue, CloseLetsConsumersDrainThenEnds) {
  fme::BoundedQueue<int> q(4);
  q.push(1);
  q.push(2);
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.push(3));  // no pushes after close
  EXPECT_EQ(q.pop(), 1);
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), std::nullopt);
  EXPECT_EQ(q.pop(), std::nullopt);  // stays ended
  q.close();                         // idempotent
  EXPECT_EQ(q.error(), nullptr);
}

TEST(BoundedQueue, CloseWakesBlockedConsumers) {
  fme::BoundedQueue<int> q(1);
  std::atomic<int> ended{0};
  std::vector<std::thread> consumers;
  for (int i = 0; i < 3; ++i) {
    consumers.emplace_back([&] {
      if (!q.pop().has_value()) ended++;
    });
  }
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(ended.load(), 0);
  q.close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(ended.load(), 3);
}

TEST(BoundedQueue, PushBlocksAtCapacityUntilAPop) {
  fme::BoundedQueue<int> q(2);
  ASSERT_TRUE(q.push(1));
  ASSERT_TRUE(q.push(2));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    q.push(3);
    pushed = true;
  });
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_FALSE(pushed.load()) << "push must block while the queue is full";
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.pop(), 1);
  producer.join();
  EXPECT_TRUE(pushed.load());
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), 3);
}

TEST(BoundedQueue, CloseWakesBlockedProducerWithFalse) {
  fme::BoundedQueue<int> q(1);
  q.push(1);
  std::atomic<int> result{-1};
  std::thread producer([&] { result = q.push(2) ? 1 : 0; });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(result.load(), -1);
  q.close();
  producer.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_EQ(q.pop(), 1);  // what was queued before close is still delivered
  EXPECT_EQ(q.pop(), std::nullopt);
}

TEST(BoundedQueue, FailStopsBothEndsAndCarriesTheError) {
  fme::BoundedQueue<int> full(1), empty(1);
  full.push(1);
  std::atomic<int> push_result{-1}, pop_ended{0};
  std::thread producer([&] { push_result = full.push(2) ? 1 : 0; });
  std::thread consumer([&] {
    if (!empty.pop().has_value()) pop_ended++;
  });
  std::this_thread::sleep_for(milliseconds(50));
  auto err = std::make_exception_ptr(std::runtime_error("tokenizer stage: bad UTF-8"));
  full.fail(err);
  empty.fail(err);
  producer.join();
  consumer.join();
  EXPECT_EQ(push_result.load(), 0);
  EXPECT_EQ(pop_ended.load(), 1);
  // After fail, queued items are abandoned and pushes refused.
  EXPECT_EQ(full.pop(), std::nullopt);
  EXPECT_FALSE(full.push(5));
  ASSERT_NE(full.error(), nullptr);
  try {
    std::rethrow_exception(full.error());
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "tokenizer stage: bad UTF-8");
  }
}

TEST(BoundedQueue, FirstFailureWins) {
  fme::BoundedQueue<int> q(1);
  q.fail(std::make_exception_ptr(std::runtime_error("first")));
  q.fail(std::make_exception_ptr(std::runtime_error("second")));
  try {
    std::rethrow_exception(q.error());
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "first");
  }
}

TEST(BoundedQueue, FailingStageStopsAPipeline) {
  // source -> q1 -> worker (throws on item 100) -> q2 -> sink; everyone must exit and see the error.
  fme::BoundedQueue<int> q1(4), q2(4);
  auto fail_all = [&](std::exception_ptr e) {
    q1.fail(e);
    q2.fail(e);
  };
  std::thread source([&] {
    for (int i = 0;; ++i)
      if (!q1.push(i)) return;  // runs forever unless stopped
  });
  std::thread worker([&] {
    try {
      while (auto v = q1.pop()) {
        if (*v == 100) throw std::runtime_error("worker failed at 100");
        if (!q2.push(*v)) return;
      }
    } catch (...) {
      fail_all(std::current_exception());
    }
  });
  int received = 0;
  std::thread sink([&] {
    while (auto v = q2.pop()) received++;
  });
  source.join();
  worker.join();
  sink.join();
  EXPECT_LE(received, 100);
  ASSERT_NE(q1.error(), nullptr);
  EXPECT_EQ(q1.error(), q2.error());
}

}  // namespace
