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

struct CustomError : std::runtime_error {
  explicit CustomError(int c) : std::runtime_error("custom"), code(c) {}
  int code;
};

TEST(Future, ErrorThrownByARunBodyIsRethrownWithItsDynamicType) {
  ThreadPool pool(OneWorker());
  Future<int> f = run(pool, []() -> int { throw CustomError(17); });
  try {
    f.get();
    ADD_FAILURE() << "get() did not throw";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 17);
  }
  EXPECT_TRUE(f.has_error());
  EXPECT_NE(f.error(), nullptr);
}

TEST(Future, GetOnCancelledThrowsCancelledError) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.is_cancelled());
  EXPECT_THROW(f.get(), CancelledError);
  EXPECT_FALSE(p.set_value(1));  // cancellation was the first settle
}

TEST(Future, FirstSettleWins) {
  Promise<int> p;
  EXPECT_TRUE(p.set_value(1));
  EXPECT_FALSE(p.set_value(2));
  EXPECT_FALSE(p.set_error(std::make_exception_ptr(std::runtime_error("late"))));
  EXPECT_FALSE(p.set_cancelled());
  EXPECT_FALSE(p.get_future().cancel());
  EXPECT_EQ(p.get_future().get(), 1);
}

TEST(Future, PromiseDestroyedUnsettledCancelsItsFuture) {
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
  }
  EXPECT_TRUE(f.is_cancelled());
  EXPECT_THROW(f.get(), CancelledError);
}

TEST(Future, MovedFromPromiseDoesNotCancelTheFuture) {
  Promise<int> p;
  Future<int> f = p.get_future();
  {
    Promise<int> q = std::move(p);
    q.set_value(4);
  }
  EXPECT_EQ(f.get(), 4);
}

TEST(Future, IsOnlyHandleOnceNeitherThePromiseNorACopyRemains) {
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
    EXPECT_FALSE(f.is_only_handle());  // the promise shares it
    p.set_value(1);
    EXPECT_FALSE(f.is_only_handle());
  }
  EXPECT_TRUE(f.is_only_handle());
  {
    Future<int> copy = f;
    EXPECT_FALSE(f.is_only_handle());
    EXPECT_FALSE(copy.is_only_handle());
  }
  EXPECT_TRUE(f.is_only_handle());
  Future<int> chained = f.then(inline_executor(), [](Future<int> r) { return r.get() + 1; });
  EXPECT_TRUE(f.is_only_handle());  // the continuation ran at once and let its copy go
  EXPECT_EQ(chained.get(), 2);
}

TEST(Future, StartFailsAfterCancel) {
  Promise<int> p;
  p.get_future().cancel();
  EXPECT_FALSE(p.start());
}

TEST(Future, StartMovesPendingToRunningOnce) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_EQ(f.status(), FutureStatus::kPending);
  EXPECT_TRUE(p.start());
  EXPECT_EQ(f.status(), FutureStatus::kRunning);
  EXPECT_FALSE(f.is_ready());
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
  // The skipped task tells the pool it was cancelled.
  EXPECT_EQ(pool.stats().cancelled, 1u);
  EXPECT_EQ(pool.stats().completed, 1u);  // only the gate
}

TEST(Future, CancelWhileRunningReturnsFalseAndRaisesTheFlagSeenInsideTheTask) {
  ThreadPool pool(OneWorker());
  absl::Notification assigned, started;
  std::atomic<bool> flag_before_cancel{true};
  Future<bool> f;
  f = run(pool, [&] {
    assigned.WaitForNotification();
    const Future<bool> self = f;
    flag_before_cancel = this_task::cancellation_requested() || self.token().requested();
    started.Notify();
    while (!this_task::cancellation_requested()) std::this_thread::yield();
    return self.token().requested();  // the token sees the same flag
  });
  assigned.Notify();
  started.WaitForNotification();
  EXPECT_FALSE(flag_before_cancel.load());
  EXPECT_EQ(f.status(), FutureStatus::kRunning);
  EXPECT_FALSE(f.cancel());  // running: only a request
  EXPECT_TRUE(f.token().requested());
  EXPECT_TRUE(f.get());  // the task still settles it with its own value
  EXPECT_FALSE(this_task::cancellation_requested());  // not inside a task here
}

TEST(Future, CancelOnASettledFutureReturnsFalseAndKeepsTheValue) {
  Promise<int> p;
  p.set_value(3);
  Future<int> f = p.get_future();
  EXPECT_FALSE(f.cancel());
  EXPECT_EQ(f.get(), 3);
}

TEST(Future, WaitForReportsWhetherItSettled) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_FALSE(f.wait_for(absl::Milliseconds(5)));
  EXPECT_FALSE(f.wait_until(absl::Now() + absl::Milliseconds(1)));
  std::thread setter([&] { p.set_value(1); });
  EXPECT_TRUE(f.wait_for(absl::Seconds(30)));
  setter.join();
  EXPECT_TRUE(f.wait_for(absl::ZeroDuration()));
}

TEST(Future, ThenRunsOnTheNamedPoolWithTheReadyFuture) {
  ThreadPool pool(OneWorker());
  Promise<int> p;
  std::atomic<bool> on_worker{false}, was_ready{false};
  Future<std::string> g = p.get_future().then(pool, [&](Future<int> r) {
    was_ready = r.is_ready();
    on_worker = pool.is_worker_thread();
    return std::to_string(r.get() * 2);
  });
  EXPECT_FALSE(g.is_ready());
  p.set_value(21);
  EXPECT_EQ(g.get(), "42");
  EXPECT_TRUE(was_ready.load());
  EXPECT_TRUE(on_worker.load());
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

TEST(Future, ThenReceivesAnErroredOrCancelledInputReady) {
  Promise<int> failing, cancelled;
  Future<bool> a = failing.get_future().then(inline_executor(), [](Future<int> r) {
    return r.has_error();
  });
  Future<bool> b = cancelled.get_future().then(inline_executor(), [](Future<int> r) {
    return r.is_cancelled();
  });
  failing.set_error(std::make_exception_ptr(std::runtime_error("e")));
  cancelled.get_future().cancel();
  EXPECT_TRUE(a.get());
  EXPECT_TRUE(b.get());
}

TEST(Future, ThenPropagatesErrorsThrownByTheContinuation) {
  Promise<int> p;
  Future<int> g = p.get_future().then(inline_executor(), [](Future<int>) -> int {
    throw std::logic_error("bad");
  });
  p.set_value(1);
  EXPECT_THROW(g.get(), std::logic_error);
}

TEST(Future, ThenRethrowingTheInputErrorPropagatesItDownTheChain) {
  ThreadPool pool(OneWorker());
  Future<int> f = run(pool, []() -> int { throw std::out_of_range("r"); });
  Future<int> g = f.then(pool, [](Future<int> r) { return r.get() + 1; })
                      .then(inline_executor(), [](Future<int> r) { return r.get() * 2; });
  EXPECT_THROW(g.get(), std::out_of_range);
}

TEST(Future, ThenAddedAfterReadyStillRunsAndChains) {
  Promise<int> p;
  p.set_value(1);
  Future<int> g = p.get_future()
                      .then(inline_executor(), [](Future<int> r) { return r.get() + 1; })
                      .then(inline_executor(), [](Future<int> r) { return r.get() * 10; });
  EXPECT_EQ(g.get(), 20);
}

TEST(Future, ThenChainsAcrossAPool) {
  ThreadPool pool(OneWorker());
  Future<int> g = run(pool, [] { return 1; })
                      .then(pool, [](Future<int> r) { return r.get() + 1; })
                      .then(pool, [](Future<int> r) { return r.get() * 10; });
  EXPECT_EQ(g.get(), 20);
}

TEST(Future, ContinuationsRunInTheOrderTheyWereAdded) {
  Promise<int> p;
  std::vector<int> order;
  std::vector<Future<void>> done;
  for (int i = 0; i < 5; ++i) {
    done.push_back(p.get_future().then(inline_executor(), [&, i](Future<int>) {
      order.push_back(i);
    }));
  }
  EXPECT_TRUE(order.empty());
  p.set_value(0);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Future, ContinuationRefusedByAShutDownPoolIsCancelledAndDoesNotRun) {
  ThreadPool pool(OneWorker());
  pool.shutdown();
  Promise<int> p;
  bool ran = false;
  Future<int> g = p.get_future().then(pool, [&](Future<int> r) {
    ran = true;
    return r.get();
  });
  EXPECT_FALSE(g.is_ready());
  p.set_value(1);
  EXPECT_TRUE(g.is_cancelled());
  EXPECT_FALSE(ran);
  // Refused at once when added to an already ready future, too.
  Future<int> h = p.get_future().then(pool, [](Future<int> r) { return r.get(); });
  EXPECT_TRUE(h.is_cancelled());
}

TEST(Future, WhenAllKeepsOrderAndMixedOutcomes) {
  Promise<int> a, b, c;
  Future<std::vector<Future<int>>> all =
      when_all(std::vector<Future<int>>{a.get_future(), b.get_future(), c.get_future()});
  c.set_value(3);
  a.set_error(std::make_exception_ptr(std::runtime_error("a")));
  EXPECT_FALSE(all.is_ready());
  b.set_cancelled();
  ASSERT_TRUE(all.is_ready());
  EXPECT_TRUE(all.has_value());  // settles with the inputs even if some failed
  const std::vector<Future<int>>& r = all.get();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_TRUE(r[0].has_error());
  EXPECT_THROW(r[0].get(), std::runtime_error);
  EXPECT_TRUE(r[1].is_cancelled());
  EXPECT_EQ(r[2].get(), 3);
}

TEST(Future, WhenAllOverPoolTasksKeepsSubmissionOrder) {
  ThreadPool::Options o;
  o.workers = 2;
  ThreadPool pool(std::move(o));
  std::vector<Future<int>> in;
  for (int i = 0; i < 100; ++i) in.push_back(run(pool, [i] { return i * i; }));
  Future<std::vector<Future<int>>> all = when_all(in);  // keeps the result alive
  const std::vector<Future<int>>& out = all.get();
  ASSERT_EQ(out.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out[i].get(), i * i);
}

TEST(Future, WhenAllOfNothingIsReadyAtOnce) {
  Future<std::vector<Future<int>>> all = when_all(std::vector<Future<int>>{});
  EXPECT_TRUE(all.is_ready());
  EXPECT_TRUE(all.get().empty());
}

TEST(Future, WhenAnyReportsTheIndexOfTheFirstToSettle) {
  Promise<int> a, b, c;
  Future<WhenAnyResult<int>> any =
      when_any(std::vector<Future<int>>{a.get_future(), b.get_future(), c.get_future()});
  EXPECT_FALSE(any.is_ready());
  b.set_value(2);
  ASSERT_TRUE(any.is_ready());
  a.set_value(1);
  EXPECT_EQ(any.get().index, 1u);
  ASSERT_EQ(any.get().futures.size(), 3u);
  EXPECT_EQ(any.get().futures[1].get(), 2);
  EXPECT_FALSE(any.get().futures[2].is_ready());
}

TEST(Future, WhenAnyCountsACancelledInputAsSettled) {
  Promise<int> a, b;
  Future<WhenAnyResult<int>> any = when_any(std::vector<Future<int>>{a.get_future(), b.get_future()});
  b.get_future().cancel();
  EXPECT_EQ(any.get().index, 1u);
}

TEST(Future, WhenAnyOfNothingThrowsInvalidArgument) {
  EXPECT_THROW(when_any(std::vector<Future<int>>{}), std::invalid_argument);
}

// Cancellers race the workers starting the same tasks: each future ends exactly one way, and
// its body ran if and only if it holds a value.
TEST(Future, RaceCancelAgainstStartSettlesExactlyOnce) {
  constexpr int kTasks = 2000;
  for (int round = 0; round < 5; ++round) {
    ThreadPool::Options o;
    o.workers = 2;
    ThreadPool pool(std::move(o));
    absl::Notification go;
    // Hold both workers until the cancellers are ready, so starts and cancels overlap.
    for (int w = 0; w < 2; ++w) ASSERT_TRUE(pool.submit([&] { go.WaitForNotification(); }).ok());
    std::vector<std::atomic<int>> ran(kTasks);
    for (auto& r : ran) r.store(0);
    std::vector<Future<int>> futures;
    futures.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i) {
      futures.push_back(run(pool, [&ran, i] {
        ran[i].fetch_add(1);
        return i;
      }));
    }
    std::atomic<int> cancelled_by_call{0};
    std::vector<std::thread> cancellers;
    for (int c = 0; c < 2; ++c) {
      cancellers.emplace_back([&, c] {
        go.WaitForNotification();
        // One from the back, one from the middle: they meet the workers coming from the front.
        for (int k = 0; k < kTasks / 2; ++k) {
          const int i = c == 0 ? kTasks - 1 - k : kTasks / 2 - 1 - k;
          if (futures[i].cancel()) cancelled_by_call.fetch_add(1);
        }
      });
    }
    go.Notify();
    for (auto& t : cancellers) t.join();
    pool.wait_idle();
    int cancelled = 0;
    for (int i = 0; i < kTasks; ++i) {
      ASSERT_TRUE(futures[i].is_ready()) << i;
      if (futures[i].has_value()) {
        EXPECT_EQ(ran[i].load(), 1) << i;
        EXPECT_EQ(futures[i].get(), i);
      } else {
        ASSERT_TRUE(futures[i].is_cancelled()) << i;
        EXPECT_EQ(ran[i].load(), 0) << i;
        ++cancelled;
      }
    }
    EXPECT_EQ(cancelled, cancelled_by_call.load());
    EXPECT_EQ(pool.stats().cancelled, static_cast<std::uint64_t>(cancelled));
  }
}

}  // namespace
}  // namespace offload
