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

TEST(ThreadPool, SubmitAfterShutdownFailsAndCancelsTheTasksFuture) {
  ThreadPool pool(WithWorkers(1));
  pool.shutdown();
  bool ran = false;
  Future<int> f = run(pool, [&] {
    ran = true;
    return 1;
  });
  EXPECT_TRUE(f.is_cancelled());
  EXPECT_FALSE(ran);
  EXPECT_EQ(pool.submit([] {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ThreadPool, ShutdownRunPendingDrainsTheQueue) {
  ThreadPool pool(WithWorkers(1));
  absl::Notification gate;
  ASSERT_TRUE(pool.submit([&] { gate.WaitForNotification(); }).ok());
  std::vector<Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(run(pool, [i] { return i; }));
  pool.shutdown(ThreadPool::Pending::kRun);
  gate.Notify();
  pool.join();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(futures[i].get(), i);
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
  pool.shutdown(ThreadPool::Pending::kCancel);
  for (auto& f : queued) EXPECT_TRUE(f.is_cancelled());
  gate.Notify();
  pool.join();
  EXPECT_EQ(running.get(), 7);
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(pool.stats().cancelled, 10u);
}

TEST(ThreadPool, WaitIdleForTimesOutWhileATaskIsBlocked) {
  ThreadPool pool(WithWorkers(2));
  absl::Notification gate;
  ASSERT_TRUE(pool.submit([&] { gate.WaitForNotification(); }).ok());
  EXPECT_FALSE(pool.wait_idle_for(absl::Milliseconds(20)));
  gate.Notify();
  EXPECT_TRUE(pool.wait_idle_for(absl::Seconds(30)));
}

TEST(ThreadPool, StatsCountOutcomes) {
  ThreadPool pool(WithWorkers(2));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pool.submit([] {}).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.submit([] { throw std::runtime_error("x"); }).ok());
  ASSERT_TRUE(pool.submit([] { this_task::report(TaskOutcome::kCancelled); }).ok());
  pool.wait_idle();
  ThreadPool::Stats s = pool.stats();
  EXPECT_EQ(s.submitted, 9u);
  EXPECT_EQ(s.completed, 5u);
  EXPECT_EQ(s.failed, 3u);
  EXPECT_EQ(s.cancelled, 1u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.busy, 0u);
  EXPECT_EQ(s.workers, 2u);
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

TEST(ThreadPool, IsWorkerThreadOnlyInsideTasks) {
  ThreadPool pool(WithWorkers(1));
  EXPECT_FALSE(pool.is_worker_thread());
  Future<bool> inside = run(pool, [&] { return pool.is_worker_thread(); });
  EXPECT_TRUE(inside.get());
}

TEST(ThreadPool, WorkerThreadsAreNamedAfterThePool) {
  ThreadPool pool(WithWorkers(1, "named"));
  Future<std::string> name = run(pool, [] {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof(buf));
    return std::string(buf);
  });
  EXPECT_EQ(name.get(), "named-0");
}

TEST(ThreadPool, ATaskMayDestroyItsOwnPool) {
  auto pool = std::make_unique<ThreadPool>(WithWorkers(2));
  ThreadPool* raw = pool.get();
  absl::Notification destroyed;
  ASSERT_TRUE(raw->submit([&] {
                    pool.reset();
                    destroyed.Notify();
                  }).ok());
  EXPECT_TRUE(destroyed.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

TEST(ThreadPool, ConcurrentJoinsReturnOnlyAfterEveryWorkerExited) {
  std::atomic<int> stopped{0};
  ThreadPool::Options o = WithWorkers(2);
  o.hooks.on_stop = [&] { stopped.fetch_add(1); };
  ThreadPool pool(std::move(o));
  absl::Notification gate;
  ASSERT_TRUE(pool.submit([&] { gate.WaitForNotification(); }).ok());
  pool.shutdown();
  std::thread a([&] {
    pool.join();
    EXPECT_EQ(stopped.load(), 2);
  });
  std::thread b([&] {
    pool.join();
    EXPECT_EQ(stopped.load(), 2);
  });
  gate.Notify();
  a.join();
  b.join();
}

TEST(ThreadPool, RaceSubmitAgainstShutdownLosesNothing) {
  for (int round = 0; round < 20; ++round) {
    ThreadPool pool(WithWorkers(2));
    constexpr int kProducers = 4, kPerProducer = 500;
    std::vector<std::vector<Future<int>>> futures(kProducers);
    std::atomic<int> ran{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          futures[p].push_back(run(pool, [&ran, i] {
            ran.fetch_add(1);
            return i;
          }));
        }
      });
    }
    pool.shutdown(round % 2 ? ThreadPool::Pending::kCancel : ThreadPool::Pending::kRun);
    for (auto& t : producers) t.join();
    pool.join();
    int values = 0;
    for (auto& list : futures) {
      for (auto& f : list) {
        ASSERT_TRUE(f.is_ready());
        if (f.has_value()) ++values;
        else EXPECT_TRUE(f.is_cancelled());
      }
    }
    EXPECT_EQ(values, ran.load());
  }
}

}  // namespace
}  // namespace offload
