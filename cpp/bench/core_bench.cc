// cpp/bench/core_bench.cc
//
// Google Benchmark suite of offload's C++ core against the plain std::mutex +
// std::condition_variable pool and queue of baseline.h: the same scenario code, the same work
// and the same thread counts drive both, through one adapter each (Offload, Baseline below).
//
//   make bench-cpp      # builds with -DOFFLOAD_BUILD_BENCHMARKS=ON, runs this, renders
//                       # build/bench-cpp.md with benchmarks/cpp_report.py
//   build/bench-cpp/core_bench --benchmark_filter=ChannelHandOff --benchmark_repetitions=3
//   build/bench-cpp/core_bench --mutex_deadlock_detection=on   # see ParseDeadlockDetection
//
// Every benchmark is registered as <scenario>/offload/<case> right before
// <scenario>/baseline/<case>, so that benchmarks/cpp_report.py can pair them and both run at
// nearly the same time on a noisy machine. Every thread a benchmark starts is joined before
// the benchmark returns; every pool is destroyed (drained and joined) in it.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/synchronization/mutex.h"
#include "baseline.h"
#include "benchmark/benchmark.h"
#include "offload/channel.h"
#include "offload/future.h"
#include "offload/thread_pool.h"

namespace {

// Each benchmark runs for at least this long (per repetition): the whole suite, three
// repetitions, takes well under a minute.
constexpr double kMinTime = 0.2;
constexpr int kTasks = 10'000;  // per iteration of PoolThroughput
constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

// ---------------------------------------------------------------------------------------------
// Adapters: what a scenario needs from an implementation.

struct Offload {
  static constexpr const char* kName = "offload";
  using Pool = offload::ThreadPool;
  using Future = offload::Future<int>;
  using Queue = offload::Channel<int>;

  static Pool::Options pool_options(std::size_t workers) {
    Pool::Options options;
    options.workers = workers;
    options.name = "bench";
    return options;
  }
  template <class F>
  static void submit(Pool& pool, F task) {
    if (!pool.submit(std::move(task)).ok()) std::abort();  // never shut down here
  }
  template <class F>
  static Future run(Pool& pool, F fn) {
    return offload::run(pool, std::move(fn));
  }
  static bool send(Queue& queue, int item) {
    return queue.send(std::move(item)) == offload::ChannelStatus::kOk;
  }
  static bool recv(Queue& queue, int* item) {
    return queue.recv(item) == offload::ChannelStatus::kOk;
  }
};

struct Baseline {
  static constexpr const char* kName = "baseline";
  using Pool = baseline::ThreadPool;
  using Future = std::future<int>;
  using Queue = baseline::BlockingQueue<int>;

  static std::size_t pool_options(std::size_t workers) { return workers; }
  template <class F>
  static void submit(Pool& pool, F task) {
    pool.submit(std::move(task));
  }
  // The textbook way: std::function must be copyable, so it shares the packaged_task.
  template <class F>
  static Future run(Pool& pool, F fn) {
    auto task = std::make_shared<std::packaged_task<int()>>(std::move(fn));
    Future future = task->get_future();
    pool.submit([task] { (*task)(); });
    return future;
  }
  static bool send(Queue& queue, int item) { return queue.send(item); }
  static bool recv(Queue& queue, int* item) { return queue.recv(item); }
};

static_assert(Offload::Queue::kUnbounded == kUnbounded);
static_assert(Baseline::Queue::kUnbounded == kUnbounded);

// Fails the benchmark unless every item of every iteration got through.
void Account(benchmark::State& state, std::int64_t done, std::int64_t per_iteration) {
  if (done != state.iterations() * per_iteration) {
    state.SkipWithError("an item or task was lost");
    return;
  }
  state.SetItemsProcessed(done);
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

// From this thread, submits kTasks tiny tasks (an atomic increment each), then waits until the
// pool is idle. Items: tasks.
struct PoolThroughput {
  static constexpr const char* kName = "BM_PoolThroughput";

  template <class Impl>
  static void Run(benchmark::State& state, std::size_t workers) {
    typename Impl::Pool pool(Impl::pool_options(workers));
    std::atomic<std::int64_t> ran{0};
    for (auto _ : state) {
      for (int i = 0; i < kTasks; ++i) {
        Impl::submit(pool, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
      }
      pool.wait_idle();
    }
    Account(state, ran.load(), kTasks);
  }
};

// Submits `batch` tasks that each return a value, then gets every result through its future.
// batch 1 measures the round-trip latency (a parked worker woken, then this thread).
// Items: results.
struct PoolRoundTrip {
  static constexpr const char* kName = "BM_PoolRoundTrip";

  template <class Impl>
  static void Run(benchmark::State& state, std::size_t workers, int batch) {
    typename Impl::Pool pool(Impl::pool_options(workers));
    std::vector<typename Impl::Future> futures;
    futures.reserve(static_cast<std::size_t>(batch));
    std::int64_t sum = 0;
    for (auto _ : state) {
      for (int i = 0; i < batch; ++i) futures.push_back(Impl::run(pool, [] { return 1; }));
      for (typename Impl::Future& f : futures) sum += f.get();
      futures.clear();
    }
    Account(state, sum, batch);
  }
};

// `producers` threads send 200,000 ints in all (20,000 at capacity 0 and 1), the last one to
// finish closes the queue; `consumers` threads receive until closed, this thread being one of
// them. Items: ints received.
struct ChannelHandOff {
  static constexpr const char* kName = "BM_ChannelHandOff";

  template <class Impl>
  static void Run(benchmark::State& state, int producers, int consumers, std::size_t capacity) {
    // At capacity 0 and 1 most items cost a wake-up: fewer of them keep the suite short.
    const int per_producer = (capacity <= 1 ? 20'000 : 200'000) / producers;
    std::int64_t received = 0;
    for (auto _ : state) {
      typename Impl::Queue queue(capacity);
      std::atomic<int> producing{producers};
      std::atomic<std::int64_t> taken{0};
      auto consume = [&] {
        std::int64_t n = 0;
        for (int item; Impl::recv(queue, &item);) ++n;
        taken.fetch_add(n, std::memory_order_relaxed);
      };
      std::vector<std::thread> threads;
      for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&] {
          for (int i = 0; i < per_producer; ++i) {
            if (!Impl::send(queue, i)) break;  // closed: never, before every producer is done
          }
          if (producing.fetch_sub(1, std::memory_order_acq_rel) == 1) queue.close();
        });
      }
      for (int c = 1; c < consumers; ++c) threads.emplace_back(consume);
      consume();
      for (std::thread& t : threads) t.join();
      received += taken.load(std::memory_order_relaxed);
    }
    Account(state, received, std::int64_t{per_producer} * producers);
  }
};

// ---------------------------------------------------------------------------------------------
// Registration.

// Registers <scenario>/offload/<params>, then <scenario>/baseline/<params>, with the same args.
template <class Scenario, class... Args>
void RegisterPair(const std::string& params, Args... args) {
  const std::string scenario = Scenario::kName;
  benchmark::RegisterBenchmark((scenario + "/offload/" + params).c_str(),
                               &Scenario::template Run<Offload>, args...)
      ->UseRealTime()
      ->MinTime(kMinTime);
  benchmark::RegisterBenchmark((scenario + "/baseline/" + params).c_str(),
                               &Scenario::template Run<Baseline>, args...)
      ->UseRealTime()
      ->MinTime(kMinTime);
}

std::string CapacityName(std::size_t capacity) {
  return capacity == kUnbounded ? "unbounded" : std::to_string(capacity);
}

void RegisterAll() {
  for (std::size_t workers : {1, 2, 4}) {
    RegisterPair<PoolThroughput>("workers:" + std::to_string(workers), workers);
  }
  for (int batch : {1, 100}) {
    for (std::size_t workers : {1, 2}) {
      RegisterPair<PoolRoundTrip>(
          "workers:" + std::to_string(workers) + "/batch:" + std::to_string(batch), workers, batch);
    }
  }
  for (std::size_t capacity : {std::size_t{0}, std::size_t{1}, std::size_t{256}, kUnbounded}) {
    const std::string params = "producers:1/consumers:1/capacity:" + CapacityName(capacity);
    RegisterPair<ChannelHandOff>(params, 1, 1, capacity);
  }
  RegisterPair<ChannelHandOff>("producers:2/consumers:2/capacity:256", 2, 2, std::size_t{256});
}

// Handles (and removes from argv) --mutex_deadlock_detection=on. Debian's abseil is built
// without NDEBUG, so absl::Mutex checks for deadlock cycles on every Lock() and on destruction,
// in a process-wide graph behind one spinlock. The Python extension turns that off at import
// (module.cc), and so does this benchmark by default: it measures what offload's users run.
// With =on it shows what a C++ program linked against Debian's abseil gets by default.
std::string ParseDeadlockDetection(int* argc, char** argv) {
  std::string mode = "off";
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    if (std::string(argv[i]) == "--mutex_deadlock_detection=on") {
      absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kAbort);
      mode = "on (abseil's debug-build default)";
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  return mode;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string deadlock_detection = ParseDeadlockDetection(&argc, argv);
  RegisterAll();
  benchmark::AddCustomContext("mutex_deadlock_detection", deadlock_detection);
  benchmark::AddCustomContext("compiler", __VERSION__);
  benchmark::AddCustomContext("abseil", std::to_string(ABSL_LTS_RELEASE_VERSION));
#ifdef NDEBUG
  benchmark::AddCustomContext("assertions", "off");
#else
  benchmark::AddCustomContext("assertions", "on: a debug build, not for figures");
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
