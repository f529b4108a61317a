#include "offload/notifier.h"

#include <poll.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "gtest/gtest.h"
#include "offload/future.h"
#include "offload/thread_pool.h"

namespace offload {
namespace {

bool Readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(Notifier, DrainRunsTasksAddedElsewhereInOrderOnTheDrainingThread) {
  Notifier n;
  std::vector<int> order;
  std::vector<std::thread::id> where;
  std::thread producer([&] {
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(n.add([&, i] {
                     where.push_back(std::this_thread::get_id());
                     order.push_back(i);
                   }).ok());
    }
  });
  producer.join();
  EXPECT_TRUE(order.empty());  // add() never runs a task
  EXPECT_EQ(n.drain(), 5u);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  for (const auto& id : where) EXPECT_EQ(id, std::this_thread::get_id());
  Notifier::Stats s = n.stats();
  EXPECT_EQ(s.added, 5u);
  EXPECT_EQ(s.ran, 5u);
  EXPECT_EQ(s.drains, 1u);
}

TEST(Notifier, FdIsReadableAfterAddAndNotAfterDrain) {
  Notifier n;
  ASSERT_GE(n.fd(), 0);
  EXPECT_FALSE(Readable(n.fd()));
  ASSERT_TRUE(n.add([] {}).ok());
  EXPECT_TRUE(Readable(n.fd()));
  EXPECT_EQ(n.drain(), 1u);
  EXPECT_FALSE(Readable(n.fd()));
  ASSERT_TRUE(n.add([] {}).ok());  // the next burst wakes again
  EXPECT_TRUE(Readable(n.fd()));
}

TEST(Notifier, ABurstFromSeveralThreadsBeforeADrainCostsExactlyOneWake) {
  Notifier n;
  constexpr int kThreads = 4, kEach = 1000;
  std::atomic<int> ran{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) ASSERT_TRUE(n.add([&] { ran.fetch_add(1); }).ok());
    });
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(n.stats().wakes, 1u);
  EXPECT_EQ(n.stats().added, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(n.drain(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(ran.load(), kThreads * kEach);
  ASSERT_TRUE(n.add([] {}).ok());
  EXPECT_EQ(n.stats().wakes, 2u);
}

// A consumer that only drains when poll() reports the fd readable must see every task: a lost
// wake-up would leave it blocked in poll() with tasks queued.
TEST(Notifier, NoWakeIsLostWhileProducersRaceTheConsumer) {
  Notifier n;
  constexpr int kThreads = 4, kEach = 20000, kTotal = kThreads * kEach;
  std::vector<std::atomic<int>> runs(kTotal);
  for (auto& r : runs) r.store(0);
  int ran = 0;  // only the consumer touches it
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = t * kEach; i < (t + 1) * kEach; ++i) {
        ASSERT_TRUE(n.add([&runs, &ran, i] {
                       runs[i].fetch_add(1);
                       ++ran;
                     }).ok());
      }
    });
  }
  while (ran < kTotal) {
    ASSERT_TRUE(Readable(n.fd(), 1000)) << "lost wake-up with " << ran << " run";
    n.drain();
  }
  for (auto& t : producers) t.join();
  EXPECT_FALSE(Readable(n.fd()));
  EXPECT_EQ(n.drain(), 0u);
  EXPECT_EQ(ran, kTotal);
  for (int i = 0; i < kTotal; ++i) ASSERT_EQ(runs[i].load(), 1) << "task " << i;
  Notifier::Stats s = n.stats();
  EXPECT_EQ(s.ran, static_cast<std::uint64_t>(kTotal));
  EXPECT_EQ(s.added, static_cast<std::uint64_t>(kTotal));
  EXPECT_LE(s.wakes, s.added);
}

TEST(Notifier, CustomWakeIsCalledOncePerBurst) {
  std::atomic<int> wakes{0};
  Notifier n([&] { wakes.fetch_add(1); });
  EXPECT_EQ(n.fd(), -1);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(n.add([] {}).ok());
  EXPECT_EQ(wakes.load(), 1);
  EXPECT_EQ(n.drain(), 10u);
  ASSERT_TRUE(n.add([] {}).ok());
  ASSERT_TRUE(n.add([] {}).ok());
  EXPECT_EQ(wakes.load(), 2);
  EXPECT_EQ(n.stats().wakes, 2u);
}

TEST(Notifier, CustomWakeIsCalledOutsideTheLockSoItMayDrain) {
  Notifier* self = nullptr;
  int ran = 0;
  Notifier n([&] { self->drain(); });  // a consumer that drains right inside its wake
  self = &n;
  ASSERT_TRUE(n.add([&] { ++ran; }).ok());
  EXPECT_EQ(ran, 1);
}

TEST(Notifier, CloseDestroysPendingTasksAndLaterAddFailsAndDestroysTheTask) {
  Notifier n;
  Promise<int> pending;
  Future<int> pending_future = pending.get_future();
  ASSERT_TRUE(n.add([p = std::move(pending)]() mutable { p.set_value(1); }).ok());
  EXPECT_FALSE(n.closed());
  n.close();
  EXPECT_TRUE(n.closed());
  EXPECT_TRUE(pending_future.is_cancelled());
  EXPECT_EQ(n.drain(), 0u);  // nothing left to run
  Promise<int> late;
  Future<int> late_future = late.get_future();
  absl::Status s = n.add([p = std::move(late)]() mutable { p.set_value(1); });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(late_future.is_cancelled());
  EXPECT_EQ(n.stats().added, 1u);
  n.close();  // idempotent
  EXPECT_TRUE(n.closed());
}

TEST(Notifier, DestroyingTheNotifierCancelsPendingTasks) {
  Future<int> f;
  {
    Notifier n;
    Promise<int> p;
    f = p.get_future();
    ASSERT_TRUE(n.add([p = std::move(p)]() mutable { p.set_value(1); }).ok());
  }
  EXPECT_TRUE(f.is_cancelled());
}

TEST(Notifier, ThenNamingTheNotifierRunsOnlyInDrain) {
  Notifier n;
  ThreadPool::Options o;
  o.workers = 1;
  ThreadPool pool(std::move(o));
  std::thread::id where;
  Future<int> g = run(pool, [] { return 1; }).then(n, [&](Future<int> r) {
    where = std::this_thread::get_id();
    return r.get() + 1;
  });
  ASSERT_TRUE(Readable(n.fd(), 30000));  // the pool settled the input and woke the loop
  EXPECT_FALSE(g.is_ready());            // but the continuation waits for drain()
  EXPECT_EQ(n.drain(), 1u);
  ASSERT_TRUE(g.is_ready());
  EXPECT_EQ(g.get(), 2);
  EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(Notifier, ThenNamingAClosedNotifierIsCancelled) {
  Notifier n;
  n.close();
  Promise<int> p;
  Future<int> g = p.get_future().then(n, [](Future<int> r) { return r.get(); });
  p.set_value(1);
  EXPECT_TRUE(g.is_cancelled());
}

TEST(Notifier, DrainOfNothingReturnsZero) {
  Notifier n;
  EXPECT_EQ(n.drain(), 0u);
  EXPECT_EQ(n.stats().drains, 0u);
}

TEST(Notifier, AThrowingTaskDoesNotStopTheOthersAndTheFirstErrorIsRethrown) {
  Notifier n;
  int ran = 0;
  ASSERT_TRUE(n.add([&] { ++ran; }).ok());
  ASSERT_TRUE(n.add([] { throw std::out_of_range("first"); }).ok());
  ASSERT_TRUE(n.add([&] { ++ran; }).ok());
  ASSERT_TRUE(n.add([] { throw std::logic_error("second"); }).ok());
  ASSERT_TRUE(n.add([&] { ++ran; }).ok());
  EXPECT_THROW(n.drain(), std::out_of_range);
  EXPECT_EQ(ran, 3);
  EXPECT_EQ(n.stats().ran, 5u);
  EXPECT_EQ(n.drain(), 0u);  // the batch is gone
}

}  // namespace
}  // namespace offload
