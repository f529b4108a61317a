#include "offload/thread_pool.h"

#include <pthread.h>

#include <atomic>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "offload/future.h"

namespace offload {
namespace {

ThreadPool::Options WithWorkers(std::size_t n, std::string name = "t") {
  ThreadPool::Options o;
  o.workers = n;
  o.name = std::move(name);
  return o;
}

// Occupies one worker of `pool` until release() (or destruction).
class Blocker {
 public:
  explicit Blocker(ThreadPool& pool) {
    EXPECT_TRUE(pool.submit([this] {
                      started_.Notify();
                      gate_.WaitForNotification();
                    }).ok());
    started_.WaitForNotification();
  }
  ~Blocker() { release(); }
  void release() {
    if (!gate_.HasBeenNotified()) gate_.Notify();
  }

 private:
  absl::Notification started_, gate_;
};

TEST(ThreadPool, RunsEverySubmittedTask) {
  ThreadPool pool(WithWorkers(4));
  std::atomic<int> count{0};
  absl::BlockingCounter done(1000);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(pool.submit([&] {
                      count.fetch_add(1);
                      done.DecrementCount();
                    }).ok());
  }
  done.Wait();
  EXPECT_EQ(count.load(), 1000);
}

TEST(ThreadPool, OneWorkerStartsTasksInSubmissionOrder) {
  ThreadPool pool(WithWorkers(1));
  std::vector<int> order;
  absl::Mutex mu;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(pool.submit([&, i] {
                      absl::MutexLock l(&mu);
                      order.push_back(i);
                    }).ok());
  }
  pool.wait_idle();
  absl::MutexLock l(&mu);
  ASSERT_EQ(order.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(order[i], i);
}

TEST(ThreadPool, DefaultWorkerCountIsTheCpusAvailable) {
  ThreadPool pool;
  EXPECT_GE(ThreadPool::default_worker_count(), 1u);
  EXPECT_EQ(pool.size(), ThreadPool::default_worker_count());
}

TEST(ThreadPool, SubmitAfterShutdownFailsAndDestroysTheTaskCancellingItsFuture) {
  ThreadPool pool(WithWorkers(1));
  pool.shutdown();
  EXPECT_TRUE(pool.is_shutdown());
  Promise<int> promise;
  Future<int> f = promise.get_future();
  bool ran = false;
  absl::Status s = pool.submit([p = std::move(promise), &ran]() mutable {
    ran = true;
    p.set_value(1);
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  // The refused task was destroyed synchronously: its promise settled the future.
  EXPECT_TRUE(f.is_cancelled());
  EXPECT_FALSE(ran);
  EXPECT_THROW(f.get(), CancelledError);
  EXPECT_EQ(pool.stats().submitted, 0u);
}

TEST(ThreadPool, RunAfterShutdownReturnsACancelledFutureWithoutRunningTheBody) {
  ThreadPool pool(WithWorkers(1));
  pool.shutdown();
  bool ran = false;
  Future<int> f = run(pool, [&] {
    ran = true;
    return 1;
  });
  EXPECT_TRUE(f.is_cancelled());
  EXPECT_FALSE(ran);
}

TEST(ThreadPool, ShutdownRunPendingDrainsTheQueueButRefusesNewTasks) {
  ThreadPool pool(WithWorkers(1));
  Blocker blocker(pool);
  std::vector<Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(run(pool, [i] { return i; }));
  pool.shutdown(ThreadPool::Pending::kRun);
  // Intake is closed even though queued work remains.
  EXPECT_EQ(pool.submit([] {}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(pool.stats().queued, 50u);
  blocker.release();
  pool.join();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(futures[i].get(), i);
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.completed, 51u);
  EXPECT_EQ(s.cancelled, 0u);
  EXPECT_EQ(s.queued, 0u);
}

TEST(ThreadPool, ShutdownCancelDropsQueuedTasksAndCancelsTheirFutures) {
  ThreadPool pool(WithWorkers(1));
  absl::Notification started, gate;
  Future<int> running = run(pool, [&] {
    started.Notify();
    gate.WaitForNotification();
    return 7;
  });
  started.WaitForNotification();
  std::atomic<int> ran{0};
  std::vector<Future<int>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(run(pool, [&] { return ++ran; }));
  EXPECT_EQ(pool.stats().queued, 10u);
  pool.shutdown(ThreadPool::Pending::kCancel);
  // Dropped synchronously by shutdown(), while the running task is still blocked.
  for (auto& f : queued) EXPECT_TRUE(f.is_cancelled());
  EXPECT_EQ(running.status(), FutureStatus::kRunning);
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.cancelled, 10u);
  EXPECT_EQ(s.queued, 0u);
  gate.Notify();
  pool.join();
  EXPECT_EQ(running.get(), 7);  // the running task is not interrupted
  EXPECT_EQ(ran.load(), 0);
  s = pool.stats();
  EXPECT_EQ(s.cancelled, 10u);
  EXPECT_EQ(s.completed, 1u);
  EXPECT_EQ(s.submitted, 11u);
}

TEST(ThreadPool, WaitIdleReturnsOnlyAfterEveryQueuedTaskFinished) {
  ThreadPool pool(WithWorkers(1));
  Blocker blocker(pool);
  std::atomic<int> done{0};
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(pool.submit([&] { done.fetch_add(1); }).ok());
  EXPECT_FALSE(pool.wait_idle_for(absl::ZeroDuration()));
  blocker.release();
  pool.wait_idle();
  EXPECT_EQ(done.load(), 20);
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.busy, 0u);
}

TEST(ThreadPool, WaitIdleForTimesOutWhileATaskIsBlocked) {
  ThreadPool pool(WithWorkers(2));
  absl::Notification gate;
  ASSERT_TRUE(pool.submit([&] { gate.WaitForNotification(); }).ok());
  const absl::Time before = absl::Now();
  EXPECT_FALSE(pool.wait_idle_for(absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(19));
  gate.Notify();
  EXPECT_TRUE(pool.wait_idle_for(absl::Seconds(30)));
}

TEST(ThreadPool, WaitIdleForOnAnIdlePoolIsTrueAtOnce) {
  ThreadPool pool(WithWorkers(2));
  EXPECT_TRUE(pool.wait_idle_for(absl::ZeroDuration()));
}

TEST(ThreadPool, StatsCountSubmittedCompletedFailedAndCancelled) {
  ThreadPool pool(WithWorkers(2));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pool.submit([] {}).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.submit([] { throw std::runtime_error("x"); }).ok());
  ASSERT_TRUE(pool.submit([] { this_task::report(TaskOutcome::kCancelled); }).ok());
  ASSERT_TRUE(pool.submit([] { this_task::report(TaskOutcome::kFailed); }).ok());
  // A run() body that throws is reported as failed too, and its future keeps the error.
  Future<int> thrown = run(pool, []() -> int { throw std::out_of_range("r"); });
  EXPECT_THROW(thrown.get(), std::out_of_range);
  pool.wait_idle();
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.submitted, 11u);
  EXPECT_EQ(s.completed, 5u);
  EXPECT_EQ(s.failed, 5u);
  EXPECT_EQ(s.cancelled, 1u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.busy, 0u);
  EXPECT_EQ(s.workers, 2u);
}

TEST(ThreadPool, AThrowingTaskDoesNotKillItsWorker) {
  ThreadPool pool(WithWorkers(1));
  ASSERT_TRUE(pool.submit([] { throw 42; }).ok());
  EXPECT_EQ(run(pool, [] { return 5; }).get(), 5);
}

TEST(ThreadPool, StatsShowQueuedAndBusyWhileBlocked) {
  ThreadPool pool(WithWorkers(1));
  Blocker blocker(pool);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.submit([] {}).ok());
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.busy, 1u);
  EXPECT_EQ(s.queued, 3u);
  blocker.release();
  pool.wait_idle();
}

TEST(ThreadPool, HooksRunOncePerWorkerWithDistinctIndexes) {
  absl::Mutex mu;
  std::multiset<std::size_t> starts;
  std::atomic<int> stops{0}, batches{0};
  {
    ThreadPool::Options o = WithWorkers(3);
    o.hooks.on_start = [&](std::size_t i) {
      absl::MutexLock l(&mu);
      starts.insert(i);
    };
    o.hooks.after_batch = [&] { batches.fetch_add(1); };
    o.hooks.on_stop = [&] { stops.fetch_add(1); };
    ThreadPool pool(std::move(o));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(pool.submit([] {}).ok());
    pool.wait_idle();
  }
  EXPECT_EQ(starts, (std::multiset<std::size_t>{0, 1, 2}));
  EXPECT_EQ(stops.load(), 3);
  EXPECT_GE(batches.load(), 1);
}

TEST(ThreadPool, MaxBatchBoundsTheTasksTakenAtOnce) {
  std::atomic<int> batches{0};
  ThreadPool::Options o = WithWorkers(1);
  o.max_batch = 4;
  o.hooks.after_batch = [&] { batches.fetch_add(1); };
  ThreadPool pool(std::move(o));
  Blocker blocker(pool);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(pool.submit([] {}).ok());
  blocker.release();
  pool.wait_idle();
  EXPECT_GE(batches.load(), 1 + 20 / 4);
}

TEST(ThreadPool, IsWorkerThreadOnlyOnThisPoolsWorkers) {
  ThreadPool pool(WithWorkers(1));
  ThreadPool other(WithWorkers(1));
  EXPECT_FALSE(pool.is_worker_thread());
  EXPECT_TRUE(run(pool, [&] { return pool.is_worker_thread(); }).get());
  EXPECT_FALSE(run(other, [&] { return pool.is_worker_thread(); }).get());
  EXPECT_FALSE(run(pool, [&] { return other.is_worker_thread(); }).get());
}

std::string CurrentThreadName() {
  char buf[16] = {};
  pthread_getname_np(pthread_self(), buf, sizeof(buf));
  return std::string(buf);
}

TEST(ThreadPool, WorkerThreadsAreNamedNameDashIndex) {
  absl::Mutex mu;
  std::set<std::string> names;
  absl::BlockingCounter started(3);
  ThreadPool::Options o = WithWorkers(3, "named");
  o.hooks.on_start = [&](std::size_t) {
    {
      absl::MutexLock l(&mu);
      names.insert(CurrentThreadName());
    }
    started.DecrementCount();
  };
  ThreadPool pool(std::move(o));
  started.Wait();
  absl::MutexLock l(&mu);
  EXPECT_EQ(names, (std::set<std::string>{"named-0", "named-1", "named-2"}));
}

TEST(ThreadPool, LongThreadNamesAreCutToFifteenBytesKeepingTheIndex) {
  ThreadPool pool(WithWorkers(1, "averyveryverylongname"));
  EXPECT_EQ(run(pool, [] { return CurrentThreadName(); }).get(), "averyveryvery-0");
}

TEST(ThreadPool, ThreadNamesAreNeverCutInsideAUtf8Character) {
  // "é" is two bytes: 8 of them and "-0" are 18 bytes; 13 bytes of name would split one.
  const std::string e = "\xc3\xa9";
  EXPECT_EQ(ThreadPool::thread_name(e + e + e + e + e + e + e + e, "-", 0),
            e + e + e + e + e + e + "-0");
  const std::string euro = "\xe2\x82\xac";  // three bytes
  EXPECT_EQ(ThreadPool::thread_name("a" + euro + euro + euro + euro + euro, "-", 12),
            "a" + euro + euro + euro + "-12");
  EXPECT_EQ(ThreadPool::thread_name("short", "_", 3), "short_3");
  // A suffix that leaves no room for the name: the whole is cut, still at a boundary.
  EXPECT_EQ(ThreadPool::thread_name(e, "-" + std::string(14, 'x') + e, 1).size(), 15u);
}

TEST(ThreadPool, ThreadNameOfTheWorkerIsWhatTheKernelShows) {
  const std::string e = "\xc3\xa9";
  ThreadPool pool(WithWorkers(1, e + e + e + e + e + e + e + e));
  EXPECT_EQ(run(pool, [] { return CurrentThreadName(); }).get(),
            ThreadPool::thread_name(e + e + e + e + e + e + e + e, "-", 0));
}

ThreadPool::Options OnDemand(std::size_t n, std::string name = "od") {
  ThreadPool::Options o = WithWorkers(n, std::move(name));
  o.start_on_demand = true;
  return o;
}

TEST(ThreadPool, OnDemandPoolsStartNoWorkerUntilATaskArrives) {
  ThreadPool pool(OnDemand(4));
  EXPECT_EQ(pool.stats().threads, 0u);
  EXPECT_EQ(run(pool, [] { return 7; }).get(), 7);
  EXPECT_EQ(pool.stats().threads, 1u);
}

TEST(ThreadPool, OnDemandStartsAWorkerForEachTaskThatFindsNoneParkedUpToTheLimit) {
  ThreadPool pool(OnDemand(3));
  absl::BlockingCounter running(3);
  absl::Notification gate;
  std::atomic<int> ran{0};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.submit([&] {
                      if (ran.fetch_add(1) < 3) running.DecrementCount();
                      gate.WaitForNotification();
                    }).ok());
  }
  running.Wait();  // three ran at once: three workers, although none was started beforehand
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.threads, 3u);
  EXPECT_EQ(s.busy, 3u);
  EXPECT_EQ(s.queued, 2u);  // the limit holds
  gate.Notify();
  pool.wait_idle();
  EXPECT_EQ(ran.load(), 5);
  EXPECT_EQ(pool.stats().threads, 3u);
}

TEST(ThreadPool, OnDemandReusesAParkedWorkerBeforeStartingAnother) {
  ThreadPool pool(OnDemand(4));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(run(pool, [i] { return i; }).get(), i);
    pool.wait_idle();  // the worker is parked once the pool is idle
  }
  EXPECT_EQ(pool.stats().threads, 1u);  // one call at a time never needs a second worker
}

TEST(ThreadPool, OnDemandKeepsSubmissionOrderWithOneWorker) {
  ThreadPool pool(OnDemand(1));
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification gate;
  ASSERT_TRUE(pool.submit([&] { gate.WaitForNotification(); }).ok());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(pool.submit([&, i] {
                      absl::MutexLock l(&mu);
                      order.push_back(i);
                    }).ok());
  }
  gate.Notify();
  pool.wait_idle();
  absl::MutexLock l(&mu);
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TEST(ThreadPool, ATaskThatStartedAWorkerIsItsOwnSoShutdownCancelCannotDropIt) {
  // As ThreadPoolExecutor: a task that finds no worker starts one and goes with it, so the
  // first tasks of a burst run even when the pool is shut down with kCancel at once.
  for (int round = 0; round < 50; ++round) {
    ThreadPool pool(OnDemand(2));
    std::atomic<int> ran{0};
    std::vector<Future<int>> futures;
    for (int i = 0; i < 10; ++i) futures.push_back(run(pool, [&ran] { return ran.fetch_add(1); }));
    pool.shutdown(ThreadPool::Pending::kCancel);
    pool.join();
    int cancelled = 0;
    for (auto& f : futures) cancelled += f.is_cancelled() ? 1 : 0;
    EXPECT_EQ(ran.load(), 10 - cancelled);
    EXPECT_GE(ran.load(), 2) << "round " << round;
  }
}

TEST(ThreadPool, ABlockedWorkerLetsAnotherRunTheTasksItWaitsFor) {
  absl::Notification retired;
  ThreadPool::Options o = WithWorkers(1, "comp");
  std::atomic<int> stops{0};
  o.hooks.on_stop = [&] {
    if (stops.fetch_add(1) == 0) retired.Notify();
  };
  ThreadPool pool(std::move(o));
  Future<int> outer = run(pool, [&pool] {
    Future<int> inner = run(pool, [] { return 41; });  // queued behind its only worker
    ThreadPool::BlockingScope blocked;                 // which now waits for it
    return inner.get() + 1;
  });
  EXPECT_EQ(outer.get(), 42);
  retired.WaitForNotification();  // the compensation worker exits once it is not needed
  EXPECT_EQ(pool.stats().threads, 1u);
  EXPECT_EQ(run(pool, [] { return 1; }).get(), 1);
}

TEST(ThreadPool, ABlockingScopeOffAWorkerThreadChangesNothing) {
  ThreadPool pool(WithWorkers(1));
  { ThreadPool::BlockingScope not_a_worker; }
  EXPECT_EQ(pool.stats().threads, 1u);
}

TEST(ThreadPool, AWorkerSubmittingToItsFullPoolLendsItsPlace) {
  // The submitter waits for its task with no BlockingScope (as a thread running its own event
  // loop would): the task still runs, on a worker started for the loan.
  absl::Notification retired;
  ThreadPool::Options o = WithWorkers(1, "lend");
  std::atomic<int> stops{0};
  o.hooks.on_stop = [&] {
    if (stops.fetch_add(1) == 0) retired.Notify();
  };
  ThreadPool pool(std::move(o));
  Future<bool> outer = run(pool, [&pool] {
    const std::thread::id me = std::this_thread::get_id();
    Future<std::thread::id> inner = run(pool, [] { return std::this_thread::get_id(); });
    return inner.get() != me;
  });
  EXPECT_TRUE(outer.get());
  retired.WaitForNotification();  // the loan ended with the outer task: the extra worker left
  EXPECT_EQ(pool.stats().threads, 1u);
}

TEST(ThreadPool, ALoanAddsOneWorkerHoweverManyTasksTheLenderSubmits) {
  ThreadPool pool(WithWorkers(1, "lend"));
  std::atomic<int> running{0}, most{0};
  absl::Notification submitted;
  Future<int> outer = run(pool, [&] {
    std::vector<Future<int>> inner;
    for (int i = 0; i < 10; ++i) {
      inner.push_back(run(pool, [&, i] {
        const int now = running.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        running.fetch_sub(1);
        return i;
      }));
    }
    int sum = 0;
    for (auto& f : inner) sum += f.get();
    return sum;
  });
  EXPECT_EQ(outer.get(), 45);
  EXPECT_EQ(most.load(), 1);  // the ten ran one after another, on the one extra worker
  EXPECT_LE(pool.stats().threads, 2u);
}

TEST(ThreadPool, AWorkerSubmittingWhileAnotherIsParkedTakesNoLoan) {
  ThreadPool pool(OnDemand(2));
  Future<std::size_t> threads = run(pool, [&pool] {
    run(pool, [] { return 0; }).get();  // a second worker starts on demand: within the limit
    return pool.stats().threads;
  });
  EXPECT_EQ(threads.get(), 2u);
  pool.wait_idle();
  EXPECT_EQ(pool.stats().threads, 2u);  // none beyond the limit, so none leaves
}

TEST(ThreadPool, ATaskMayDestroyItsOwnPool) {
  std::atomic<int> stops{0};
  ThreadPool::Options o = WithWorkers(2);
  o.hooks.on_stop = [&stops] { stops.fetch_add(1); };
  auto pool = std::make_unique<ThreadPool>(std::move(o));
  ThreadPool* raw = pool.get();
  absl::Notification destroyed;
  std::atomic<int> stops_seen_inside{-1};
  ASSERT_TRUE(raw->submit([&] {
                    pool.reset();  // ~ThreadPool on its own worker: must not self-join
                    stops_seen_inside = stops.load();
                    destroyed.Notify();
                  }).ok());
  ASSERT_TRUE(destroyed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(pool, nullptr);
  // The destructor waited for the other worker, but not for the one it runs on.
  EXPECT_EQ(stops_seen_inside.load(), 1);
}

TEST(ThreadPool, ATaskMayJoinItsOwnPool) {
  std::atomic<int> stops{0};
  ThreadPool::Options o = WithWorkers(3);
  o.hooks.on_stop = [&stops] { stops.fetch_add(1); };
  ThreadPool pool(std::move(o));
  absl::Notification joined;
  std::atomic<int> stops_seen_inside{-1};
  ASSERT_TRUE(pool.submit([&] {
                    pool.shutdown();
                    pool.join();  // skips the calling worker
                    stops_seen_inside = stops.load();
                    joined.Notify();
                  }).ok());
  ASSERT_TRUE(joined.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(stops_seen_inside.load(), 2);
  pool.join();  // now waits for the last worker too
  EXPECT_EQ(stops.load(), 3);
}

TEST(ThreadPool, ConcurrentJoinsReturnOnlyAfterEveryWorkerExited) {
  for (int round = 0; round < 5; ++round) {
    std::atomic<int> stopped{0};
    ThreadPool::Options o = WithWorkers(2);
    o.hooks.on_stop = [&] { stopped.fetch_add(1); };
    ThreadPool pool(std::move(o));
    Blocker blocker(pool);
    pool.shutdown();
    std::atomic<int> returned{0};
    std::thread a([&] {
      pool.join();
      EXPECT_EQ(stopped.load(), 2);
      returned.fetch_add(1);
    });
    std::thread b([&] {
      pool.join();
      EXPECT_EQ(stopped.load(), 2);
      returned.fetch_add(1);
    });
    // Neither join may return while a worker is still blocked.
    EXPECT_EQ(returned.load(), 0);
    blocker.release();
    a.join();
    b.join();
    EXPECT_EQ(returned.load(), 2);
  }
}

// Producers submit run() tasks while another thread shuts the pool down: every future ends
// with a value (its body ran) or cancelled (its body did not), never pending.
TEST(ThreadPool, RaceSubmitAgainstShutdownSettlesEveryFuture) {
  constexpr int kProducers = 3, kPerProducer = 400, kTotal = kProducers * kPerProducer;
  for (int round = 0; round < 16; ++round) {
    const bool cancel = round % 2 == 1;
    ThreadPool pool(WithWorkers(2));
    std::vector<Future<int>> futures(kTotal);
    std::vector<std::atomic<int>> ran(kTotal);
    for (auto& r : ran) r.store(0);
    std::atomic<int> submitted{0};
    absl::Notification quarter_submitted;
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = p * kPerProducer; i < (p + 1) * kPerProducer; ++i) {
          futures[i] = run(pool, [&ran, i] {
            ran[i].fetch_add(1);
            return i;
          });
          if (submitted.fetch_add(1) + 1 == kTotal / 4) quarter_submitted.Notify();
        }
      });
    }
    std::thread stopper([&] {
      quarter_submitted.WaitForNotification();
      pool.shutdown(cancel ? ThreadPool::Pending::kCancel : ThreadPool::Pending::kRun);
    });
    for (auto& t : producers) t.join();
    stopper.join();
    pool.join();
    int values = 0;
    for (int i = 0; i < kTotal; ++i) {
      const Future<int>& f = futures[i];
      ASSERT_TRUE(f.valid());
      ASSERT_TRUE(f.is_ready()) << "pending future " << i;
      if (f.has_value()) {
        ++values;
        EXPECT_EQ(f.get(), i);
        EXPECT_EQ(ran[i].load(), 1) << i;
      } else {
        EXPECT_TRUE(f.is_cancelled()) << i;
        EXPECT_EQ(ran[i].load(), 0) << i;
      }
    }
    if (!cancel) {
      EXPECT_GE(values, kTotal / 4);  // accepted before shutdown, then drained
    }
    ThreadPool::Stats s = pool.stats();
    EXPECT_EQ(s.completed, static_cast<std::uint64_t>(values));
    EXPECT_EQ(s.submitted, s.completed + s.cancelled);
  }
}

}  // namespace
}  // namespace offload

namespace offload {
namespace {

// A worker must not take tasks out of the queue ahead of time: while one worker is blocked
// in a task, everything queued behind it runs on the other worker.
TEST(ThreadPool, ABlockedTaskDoesNotHoldBackTasksQueuedBehindIt) {
  ThreadPool pool(WithWorkers(2));
  absl::Notification gate;
  ASSERT_TRUE(pool.submit([&] { gate.WaitForNotification(); }).ok());
  std::atomic<int> quick{0};
  absl::Notification all_quick_done;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(pool.submit([&] {
                      if (quick.fetch_add(1) + 1 == 20) all_quick_done.Notify();
                    }).ok());
  }
  // All 20 finish while the first task still blocks its worker.
  EXPECT_TRUE(all_quick_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  gate.Notify();
  pool.wait_idle();
}

}  // namespace
}  // namespace offload

namespace offload {
namespace {

// Found by review: two workers that each join their own pool used to wait for each other.
TEST(ThreadPool, TwoWorkersJoiningTheirOwnPoolDoNotDeadlock) {
  for (int round = 0; round < 20; ++round) {
    auto pool = std::make_shared<ThreadPool>(WithWorkers(2));
    std::atomic<int> inside{0};
    absl::Notification both_inside;
    absl::BlockingCounter both_joined(2);
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(pool->submit([&, p = pool.get()] {
                        if (inside.fetch_add(1) + 1 == 2) both_inside.Notify();
                        both_inside.WaitForNotification();  // both workers join at once
                        p->shutdown();
                        p->join();
                        both_joined.DecrementCount();
                      }).ok());
    }
    absl::Notification done;
    std::thread watcher([&] {
      both_joined.Wait();
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30))) << "round " << round;
    watcher.join();
    pool->join();  // from outside: returns once both workers have exited
    EXPECT_EQ(pool->stats().completed, 2u);
  }
}

}  // namespace
}  // namespace offload
