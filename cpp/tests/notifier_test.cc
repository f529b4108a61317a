#include "offload/notifier.h"

#include <poll.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "gtest/gtest.h"
#include "offload/future.h"

namespace offload {
namespace {

bool Readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(Notifier, DrainRunsTasksInOrderOnTheDrainingThread) {
  Notifier n;
  std::vector<int> order;
  const std::thread::id me = std::this_thread::get_id();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(n.add([&, i] {
                   EXPECT_EQ(std::this_thread::get_id(), me);
                   order.push_back(i);
                 }).ok());
  }
  EXPECT_EQ(n.drain(), 5u);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Notifier, FdIsReadableAfterAddAndNotAfterDrain) {
  Notifier n;
  EXPECT_FALSE(Readable(n.fd()));
  ASSERT_TRUE(n.add([] {}).ok());
  EXPECT_TRUE(Readable(n.fd()));
  n.drain();
  EXPECT_FALSE(Readable(n.fd()));
}

TEST(Notifier, ABurstFromSeveralThreadsCostsOneWake) {
  Notifier n;
  std::atomic<int> ran{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) ASSERT_TRUE(n.add([&] { ran.fetch_add(1); }).ok());
    });
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(n.stats().wakes, 1u);
  EXPECT_EQ(n.drain(), 4000u);
  EXPECT_EQ(ran.load(), 4000);
}

TEST(Notifier, NoWakeIsLostWhileProducersRaceTheConsumer) {
  Notifier n;
  constexpr int kThreads = 4, kEach = 20000;
  std::atomic<int> ran{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) ASSERT_TRUE(n.add([&] { ran.fetch_add(1); }).ok());
    });
  }
  // The consumer only drains when the fd says so; a lost wake would leave it blocked.
  while (ran.load() < kThreads * kEach) {
    ASSERT_TRUE(Readable(n.fd(), 10000)) << "lost wake-up with " << ran.load() << " run";
    n.drain();
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(n.drain(), 0u);
  EXPECT_EQ(ran.load(), kThreads * kEach);
  EXPECT_EQ(n.stats().ran, static_cast<std::uint64_t>(kThreads * kEach));
}

TEST(Notifier, CustomWakeIsCalledOncePerBurst) {
  std::atomic<int> wakes{0};
  Notifier n([&] { wakes.fetch_add(1); });
  EXPECT_EQ(n.fd(), -1);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(n.add([] {}).ok());
  EXPECT_EQ(wakes.load(), 1);
  n.drain();
  ASSERT_TRUE(n.add([] {}).ok());
  EXPECT_EQ(wakes.load(), 2);
}

TEST(Notifier, CloseDestroysPendingTasksAndRefusesNewOnes) {
  Notifier n;
  Promise<int> pending;
  Future<int> pending_future = pending.get_future();
  ASSERT_TRUE(n.add([p = std::move(pending)]() mutable { p.set_value(1); }).ok());
  n.close();
  EXPECT_TRUE(n.closed());
  EXPECT_TRUE(pending_future.is_cancelled());
  Promise<int> late;
  Future<int> late_future = late.get_future();
  EXPECT_FALSE(n.add([p = std::move(late)]() mutable { p.set_value(1); }).ok());
  EXPECT_TRUE(late_future.is_cancelled());
}

TEST(Notifier, ContinuationNamingTheNotifierRunsOnlyInDrain) {
  Notifier n;
  Promise<int> p;
  Future<int> g = p.get_future().then(n, [](Future<int> r) { return r.get() + 1; });
  p.set_value(1);
  EXPECT_FALSE(g.is_ready());
  n.drain();
  EXPECT_EQ(g.get(), 2);
}

TEST(Notifier, DrainOfNothingRunsNothing) {
  Notifier n;
  EXPECT_EQ(n.drain(), 0u);
}

TEST(Notifier, AThrowingTaskDoesNotStopTheOthers) {
  Notifier n;
  int ran = 0;
  ASSERT_TRUE(n.add([] { throw std::runtime_error("boom"); }).ok());
  ASSERT_TRUE(n.add([&] { ++ran; }).ok());
  EXPECT_THROW(n.drain(), std::runtime_error);
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace offload
