// offload/thread_pool.h
//
// ThreadPool: worker threads fed from one FIFO queue guarded by one mutex.
//
//   offload::ThreadPool::Options options;
//   options.workers = 4;
//   offload::ThreadPool pool(std::move(options));
//   pool.submit([] { compress(block); });                          // fire and forget
//   offload::Future<int> f = offload::run(pool, [] { return 42; }); // with a result (future.h)
//   pool.shutdown(offload::ThreadPool::Pending::kRun);             // stop intake, drain
//   pool.join();
//
// Sleep and wake-up protocol
//   * An idle worker parks on `work_cv_`; `idle_` counts parked workers.
//   * submit() pushes under the lock and signals the condition variable only when a worker is
//     parked, so it wakes at most one worker and makes no syscall when all are busy.
//   * A worker that wakes runs tasks back to back (a "batch") without parking, up to
//     Options::max_batch, taking each from the shared queue only when it starts it: a task
//     that blocks never holds others back while another worker is free. When more work is
//     queued and a worker is parked, the taker passes the wake-up on.
//   * After each batch the worker calls Hooks::after_batch before it may park;
//     the Python binding releases the GIL there, so no worker ever parks holding it.
//
// Starting workers
//   * Options::start_on_demand false: every worker starts with the pool. True: as
//     concurrent.futures.ThreadPoolExecutor, a worker starts when a task is submitted and no
//     worker is parked, up to Options::workers; the new worker takes the task at the head of the
//     queue with it (so shutdown(kCancel) cannot drop it, and FIFO order holds).
//   * Compensation (managed blocking, as in ForkJoinPool): a worker inside a BlockingScope waits
//     for other work to finish. While it does, the pool may run one more worker than
//     Options::workers, so that queued tasks are not stuck behind a worker that waits for them.
//     A worker beyond the limit exits when it finds the queue empty.
//   * Lending: a worker that submits to its own pool when no worker is free lends its place
//     until its current task ends: one more worker may run meanwhile, so the task it submitted
//     does not wait behind the submitter, whatever the submitter then waits on (a future, its
//     own event loop). One loan per worker at a time: a burst of such submits adds one worker.
//
// Shutdown: shutdown() stops intake (submit then fails with FailedPrecondition and destroys
// the task). Pending::kRun lets workers finish the queue; Pending::kCancel destroys queued
// tasks (outside the lock) so their promises report cancellation. join() waits for the workers;
// a worker that calls join() or destroys its own pool is skipped and exits by itself.

#ifndef OFFLOAD_THREAD_POOL_H_
#define OFFLOAD_THREAD_POOL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "offload/executor.h"

namespace offload {

class ThreadPool final : public Executor {
  class State;

 public:
  // Called on worker threads; each hook may run concurrently on several workers.
  struct Hooks {
    std::function<void(std::size_t index)> on_start;  // before the worker's first task
    std::function<void()> after_batch;                // after each batch, before the next wait
    std::function<void()> on_stop;                    // after the worker's last task
  };

  struct Options {
    std::size_t workers = 0;  // the most workers running at once (0: the CPUs this process may run on)
    bool start_on_demand = false;  // false: all start with the pool; true: see above
    std::string name = "offload";  // threads are named "<name><separator><index>"
    std::string separator = "-";   // (the kernel's copy is cut to 15 bytes: see thread_name)
    std::size_t max_batch = 64;    // most tasks a worker runs between two after_batch hooks
    Hooks hooks;
  };

  struct Stats {
    std::uint64_t submitted = 0;  // accepted by submit()
    std::uint64_t completed = 0;  // ran and reported TaskOutcome::kCompleted
    std::uint64_t failed = 0;     // threw, or reported TaskOutcome::kFailed
    std::uint64_t cancelled = 0;  // dropped by shutdown(kCancel) or reported kCancelled
    std::size_t queued = 0;       // waiting in the queue
    std::size_t busy = 0;         // workers running a batch
    std::size_t workers = 0;      // Options::workers
    std::size_t threads = 0;      // workers started and not leaving (compensation included)
  };

  enum class Pending { kRun, kCancel };

  // Starts every worker. Throws std::runtime_error (naming how many started) when the system
  // refuses a thread; the workers already started are told to stop and exit on their own.
  explicit ThreadPool(Options options);
  ThreadPool() : ThreadPool(Options()) {}
  // shutdown(Pending::kRun), then join().
  ~ThreadPool() override;

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task` (FIFO). Fails with FailedPrecondition after shutdown (task destroyed), and
  // with ResourceExhausted when the pool has no worker and the system refuses to start one
  // (every queued task is then destroyed: nothing could ever run it).
  absl::Status submit(Task task);
  absl::Status add(Task task) override { return submit(std::move(task)); }

  // Stops intake; idempotent. kCancel also destroys every queued task without running it.
  void shutdown(Pending pending = Pending::kRun);
  // Waits until every worker has exited (call after shutdown()). Called from a worker, it
  // waits for every other worker that is not itself in join(); the caller exits once its
  // task returns.
  void join();
  // As join(), but gives up at `deadline` (false, nothing joined): a caller that must stay
  // responsive (to Ctrl-C, say) waits in slices.
  bool join_until(absl::Time deadline);
  // True once every worker has exited (after shutdown(), join() then returns at once).
  bool exited() const;
  // How many workers were started over the pool's life (their indexes are 0 to started() - 1).
  std::size_t started() const;

  // Waits until the queue is empty and no worker is running a task. Never call it from one
  // of this pool's tasks: that task keeps the pool busy, so it would wait forever.
  void wait_idle();
  // As wait_idle(), for at most `timeout`; true when idle.
  bool wait_idle_for(absl::Duration timeout);

  Stats stats() const;
  std::size_t size() const;
  bool is_shutdown() const;
  // True on one of this pool's worker threads.
  bool is_worker_thread() const;

  // The number of CPUs this process may run on (sched_getaffinity), at least 1.
  static std::size_t default_worker_count();

  // The name the kernel shows for worker `index` (what top -H and /proc/<pid>/task/*/comm show):
  // "<name><separator><index>" cut to 15 bytes by shortening `name` at a UTF-8 character
  // boundary, so that the index stays readable.
  static std::string thread_name(const std::string& name, const std::string& separator,
                                 std::size_t index);

  // Marks the calling thread, when it is a worker of any ThreadPool, as blocked waiting for
  // other work for one scope (see "Compensation" above); does nothing on other threads. Nests.
  class BlockingScope {
   public:
    BlockingScope();
    ~BlockingScope();
    BlockingScope(const BlockingScope&) = delete;
    BlockingScope& operator=(const BlockingScope&) = delete;

   private:
    State* pool_;  // the calling worker's pool (alive as long as its worker), or null
  };

 private:
  std::shared_ptr<State> state_;  // shared with the workers: a detached worker keeps it alive
};

}  // namespace offload

#endif  // OFFLOAD_THREAD_POOL_H_
