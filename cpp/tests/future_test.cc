#include "offload/future.h"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "offload/thread_pool.h"

namespace offload {
namespace {

ThreadPool::Options OneWorker() {
  ThreadPool::Options o;
  o.workers = 1;
  return o;
}

TEST(Future, SetValueIsSeenByGet) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_FALSE(f.is_ready());
  EXPECT_TRUE(p.set_value(5));
  EXPECT_EQ(f.get(), 5);
  EXPECT_TRUE(f.has_value());
}

TEST(Future, VoidFutureCompletes) {
  Promise<void> p;
  Future<void> f = p.get_future();
  p.set_value();
  f.get();
  EXPECT_EQ(f.status(), FutureStatus::kValue);
}

TEST(Future, ErrorIsRethrownWithItsType) {
  Promise<int> p;
  p.set_error(std::make_exception_ptr(std::out_of_range("far")));
  Future<int> f = p.get_future();
  EXPECT_TRUE(f.has_error());
  EXPECT_THROW(f.get(), std::out_of_range);
}

TEST(Future, GetOnCancelledThrowsCancelledError) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_TRUE(f.cancel());
  EXPECT_THROW(f.get(), CancelledError);
}

TEST(Future, FirstSettleWins) {
  Promise<int> p;
  EXPECT_TRUE(p.set_value(1));
  EXPECT_FALSE(p.set_value(2));
  EXPECT_FALSE(p.set_cancelled());
  EXPECT_EQ(p.get_future().get(), 1);
}

TEST(Future, PromiseDestroyedUnsettledCancelsItsFuture) {
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
  }
  EXPECT_TRUE(f.is_cancelled());
}

TEST(Future, StartFailsAfterCancel) {
  Promise<int> p;
  p.get_future().cancel();
  EXPECT_FALSE(p.start());
}

TEST(Future, CancelBeforeStartSkipsTheBody) {
  ThreadPool pool(OneWorker());
  absl::Notification gate;
  ASSERT_TRUE(pool.submit([&] { gate.WaitForNotification(); }).ok());
  std::atomic<bool> ran{false};
  Future<int> f = run(pool, [&] {
    ran = true;
    return 1;
  });
  EXPECT_TRUE(f.cancel());
  gate.Notify();
  pool.wait_idle();
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(f.is_cancelled());
}

TEST(Future, CancelWhileRunningRaisesTheTasksFlag) {
  ThreadPool pool(OneWorker());
  absl::Notification started;
  Future<bool> f = run(pool, [&] {
    started.Notify();
    while (!this_task::cancellation_requested()) std::this_thread::yield();
    return true;
  });
  started.WaitForNotification();
  EXPECT_FALSE(f.cancel());
  EXPECT_TRUE(f.token().requested());
  EXPECT_TRUE(f.get());
}

TEST(Future, WaitForReportsWhetherItSettled) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_FALSE(f.wait_for(absl::Milliseconds(5)));
  p.set_value(1);
  EXPECT_TRUE(f.wait_for(absl::Milliseconds(5)));
}

TEST(Future, ThenRunsOnTheNamedExecutorWithTheReadyFuture) {
  ThreadPool pool(OneWorker());
  Promise<int> p;
  Future<std::string> g = p.get_future().then(pool, [&](Future<int> r) {
    EXPECT_TRUE(r.is_ready());
    EXPECT_TRUE(pool.is_worker_thread());
    return std::to_string(r.get() * 2);
  });
  p.set_value(21);
  EXPECT_EQ(g.get(), "42");
}

TEST(Future, ThenOnInlineExecutorRunsOnTheSettlingThread) {
  Promise<int> p;
  std::thread::id where;
  Future<void> g = p.get_future().then(inline_executor(), [&](Future<int>) {
    where = std::this_thread::get_id();
  });
  std::thread t([&] { p.set_value(1); });
  const std::thread::id settler = t.get_id();
  t.join();
  g.get();
  EXPECT_EQ(where, settler);
}

TEST(Future, ThenPropagatesErrorsThrownByTheContinuation) {
  Promise<int> p;
  Future<int> g = p.get_future().then(inline_executor(), [](Future<int>) -> int {
    throw std::logic_error("bad");
  });
  p.set_value(1);
  EXPECT_THROW(g.get(), std::logic_error);
}

TEST(Future, ThenAddedAfterReadyStillRunsAndChains) {
  Promise<int> p;
  p.set_value(1);
  Future<int> g = p.get_future()
                      .then(inline_executor(), [](Future<int> r) { return r.get() + 1; })
                      .then(inline_executor(), [](Future<int> r) { return r.get() * 10; });
  EXPECT_EQ(g.get(), 20);
}

TEST(Future, ContinuationRefusedByAShutDownPoolIsCancelled) {
  ThreadPool pool(OneWorker());
  pool.shutdown();
  Promise<int> p;
  Future<int> g = p.get_future().then(pool, [](Future<int> r) { return r.get(); });
  p.set_value(1);
  EXPECT_TRUE(g.is_cancelled());
}

TEST(Future, WhenAllKeepsOrderAndMixedOutcomes) {
  Promise<int> a, b, c;
  Future<std::vector<Future<int>>> all =
      when_all(std::vector<Future<int>>{a.get_future(), b.get_future(), c.get_future()});
  c.set_value(3);
  a.set_error(std::make_exception_ptr(std::runtime_error("a")));
  EXPECT_FALSE(all.is_ready());
  b.set_cancelled();
  const std::vector<Future<int>>& r = all.get();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_TRUE(r[0].has_error());
  EXPECT_TRUE(r[1].is_cancelled());
  EXPECT_EQ(r[2].get(), 3);
}

TEST(Future, WhenAllOfNothingIsReady) {
  EXPECT_TRUE(when_all(std::vector<Future<int>>{}).is_ready());
}

TEST(Future, WhenAnyReportsTheFirstToSettle) {
  Promise<int> a, b;
  Future<WhenAnyResult<int>> any = when_any(std::vector<Future<int>>{a.get_future(), b.get_future()});
  b.set_value(2);
  a.set_value(1);
  EXPECT_EQ(any.get().index, 1u);
  EXPECT_EQ(any.get().futures[1].get(), 2);
}

TEST(Future, WhenAnyOfNothingThrows) {
  EXPECT_THROW(when_any(std::vector<Future<int>>{}), std::invalid_argument);
}

TEST(Future, RaceCancelAgainstStartSettlesExactlyOnce) {
  ThreadPool::Options o;
  o.workers = 2;
  ThreadPool pool(std::move(o));
  constexpr int kTasks = 3000;
  std::vector<std::atomic<bool>> ran(kTasks);
  std::vector<Future<int>> futures;
  futures.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    futures.push_back(run(pool, [&ran, i] {
      ran[i] = true;
      return i;
    }));
  }
  std::thread canceller([&] {
    for (int i = kTasks - 1; i >= 0; --i) futures[i].cancel();
  });
  canceller.join();
  pool.wait_idle();
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(futures[i].is_ready());
    if (futures[i].has_value()) {
      EXPECT_TRUE(ran[i].load());
      EXPECT_EQ(futures[i].get(), i);
    } else {
      EXPECT_TRUE(futures[i].is_cancelled());
      EXPECT_FALSE(ran[i].load());
    }
  }
}

}  // namespace
}  // namespace offload
