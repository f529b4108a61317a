#include "offload/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "offload/this_task.h"

namespace offload {
class ThreadPool::State {
 public:
  explicit State(Options options)
      : workers_(options.workers == 0 ? default_worker_count() : options.workers),
        name_(std::move(options.name)),
        separator_(std::move(options.separator)),
        max_batch_(std::max<std::size_t>(1, options.max_batch)),
        hooks_(std::move(options.hooks)) {}

  // Starts every worker, or none: when the system refuses a thread, the ones already started
  // are told to stop and detached (they hold the State and exit on their own, after their
  // on_start hook, which may need a lock the caller holds, such as Python's GIL), and the
  // error names how far it got.
  static void start(const std::shared_ptr<State>& state) {
    std::vector<std::thread> started;
    std::string failure;
    {
      absl::MutexLock l(&state->mu_);
      state->threads_.reserve(state->workers_);
      state->alive_ = state->workers_;
      try {
        for (std::size_t i = 0; i < state->workers_; ++i) {
          state->threads_.emplace_back([state, i] { state->work(i); });
        }
        return;
      } catch (const std::system_error& error) {
        failure = "offload: could not start all " + std::to_string(state->workers_) +
                  " workers (thread " + std::to_string(state->threads_.size() + 1) +
                  " failed): " + error.what();
        state->alive_ = state->threads_.size();
        state->stopping_ = true;
        state->work_cv_.SignalAll();
        started.swap(state->threads_);
      }
    }
    for (std::thread& t : started) t.detach();
    throw std::runtime_error(failure);
  }

  absl::Status submit(Task task) {
    {
      absl::MutexLock l(&mu_);
      if (!stopping_) {
        queue_.push_back(std::move(task));
        ++submitted_;
        if (idle_ > 0) work_cv_.Signal();
        return absl::OkStatus();
      }
    }
    task = nullptr;  // destroyed outside the lock: it may settle a promise
    return absl::FailedPreconditionError("offload: submit to a ThreadPool that was shut down");
  }

  void shutdown(Pending pending) {
    std::deque<Task> dropped;
    {
      absl::MutexLock l(&mu_);
      stopping_ = true;
      if (pending == Pending::kCancel) {
        cancelled_ += queue_.size();
        dropped.swap(queue_);
        if (busy_ == 0) idle_cv_.SignalAll();
      }
      work_cv_.SignalAll();
    }
    dropped.clear();  // outside the lock
  }

  // A non-worker joins the threads it finds and waits until every worker has exited. A worker
  // never blocks in std::thread::join (two workers joining each other would deadlock): it
  // detaches the threads and waits until only workers that are themselves inside join()
  // remain; they exit once their tasks return. Either way a second concurrent join() does not
  // return early.
  void join() {
    const bool worker = is_worker_thread();
    std::vector<std::thread> threads;
    {
      absl::MutexLock l(&mu_);
      threads.swap(threads_);
      if (worker) ++workers_in_join_;
    }
    for (std::thread& t : threads) {
      if (worker) {
        t.detach();  // each keeps the State alive through its own shared_ptr
      } else {
        t.join();
      }
    }
    absl::MutexLock l(&mu_);
    if (worker) {
      while (alive_ > workers_in_join_) exit_cv_.Wait(&mu_);
      --workers_in_join_;
    } else {
      while (alive_ > 0) exit_cv_.Wait(&mu_);
    }
  }

  void wait_idle() {
    absl::MutexLock l(&mu_);
    while (!idle_locked()) idle_cv_.Wait(&mu_);
  }

  bool wait_idle_for(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    absl::MutexLock l(&mu_);
    while (!idle_locked()) {
      if (idle_cv_.WaitWithDeadline(&mu_, deadline) && !idle_locked()) return false;
    }
    return true;
  }

  Stats stats() const {
    Stats s;
    s.completed = completed_.load(std::memory_order_relaxed);
    s.failed = failed_.load(std::memory_order_relaxed);
    s.workers = workers_;
    absl::MutexLock l(&mu_);
    s.submitted = submitted_;
    s.cancelled = cancelled_ + task_cancelled_.load(std::memory_order_relaxed);
    s.queued = queue_.size();
    s.busy = busy_;
    return s;
  }

  std::size_t size() const { return workers_; }

  bool is_shutdown() const {
    absl::MutexLock l(&mu_);
    return stopping_;
  }

  bool is_worker_thread() const { return current_pool() == this; }

 private:
  bool idle_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && busy_ == 0;
  }

  // The pool whose worker runs on this thread, if any.
  static const State*& current_pool() {
    thread_local const State* pool = nullptr;
    return pool;
  }

  void set_thread_name(std::size_t index) const {
    std::string name = name_ + separator_ + std::to_string(index);
    if (name.size() > 15) name.resize(15);  // the kernel's limit
    pthread_setname_np(pthread_self(), name.c_str());
  }

  void work(std::size_t index) {
    current_pool() = this;
    set_thread_name(index);
    if (hooks_.on_start) hooks_.on_start(index);
    for (;;) {
      Task task;
      {
        absl::MutexLock l(&mu_);
        while (queue_.empty() && !stopping_) {
          ++idle_;
          work_cv_.Wait(&mu_);
          --idle_;
        }
        if (queue_.empty()) break;  // stopping and drained
        task = pop_locked();
        ++busy_;
      }
      // A run: tasks back to back, without parking, up to max_batch_. Tasks stay in the
      // shared queue until one starts, so a task that blocks never holds others back.
      for (std::size_t ran = 1;; ++ran) {
        run_one(std::move(task));
        task = nullptr;  // destroys what it captured, outside the lock
        if (ran == max_batch_) break;
        absl::MutexLock l(&mu_);
        if (queue_.empty()) break;
        task = pop_locked();
      }
      if (hooks_.after_batch) hooks_.after_batch();
      absl::MutexLock l(&mu_);
      --busy_;
      if (idle_locked()) idle_cv_.SignalAll();
    }
    if (hooks_.on_stop) hooks_.on_stop();
    current_pool() = nullptr;
    absl::MutexLock l(&mu_);
    --alive_;
    exit_cv_.SignalAll();
  }

  Task pop_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Task task = std::move(queue_.front());
    queue_.pop_front();
    // More work and a parked worker: pass the wake-up on, so a burst spreads over every worker.
    if (!queue_.empty() && idle_ > 0) work_cv_.Signal();
    return task;
  }

  void run_one(Task task) {
    TaskOutcome outcome = TaskOutcome::kCompleted;
    {
      this_task::OutcomeScope scope(&outcome);
      try {
        std::move(task)();
      } catch (...) {
        outcome = TaskOutcome::kFailed;
      }
    }
    switch (outcome) {
      case TaskOutcome::kCompleted:
        completed_.fetch_add(1, std::memory_order_relaxed);
        break;
      case TaskOutcome::kFailed:
        failed_.fetch_add(1, std::memory_order_relaxed);
        break;
      case TaskOutcome::kCancelled:
        task_cancelled_.fetch_add(1, std::memory_order_relaxed);
        break;
    }
  }

  const std::size_t workers_;
  const std::string name_;
  const std::string separator_;
  const std::size_t max_batch_;
  const Hooks hooks_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // signalled when work arrives or on shutdown
  absl::CondVar idle_cv_;  // signalled when the pool becomes idle
  absl::CondVar exit_cv_;  // signalled when a worker exits
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::size_t alive_ ABSL_GUARDED_BY(mu_) = 0;  // workers that have not exited
  std::size_t workers_in_join_ ABSL_GUARDED_BY(mu_) = 0;  // workers blocked in join()
  std::size_t idle_ ABSL_GUARDED_BY(mu_) = 0;  // workers parked on work_cv_
  std::size_t busy_ ABSL_GUARDED_BY(mu_) = 0;  // workers running a batch
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::uint64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t cancelled_ ABSL_GUARDED_BY(mu_) = 0;  // dropped by shutdown(kCancel)
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> task_cancelled_{0};  // reported by tasks
};

ThreadPool::ThreadPool(Options options) : state_(std::make_shared<State>(std::move(options))) {
  State::start(state_);
}

ThreadPool::~ThreadPool() {
  state_->shutdown(Pending::kRun);
  state_->join();
}

absl::Status ThreadPool::submit(Task task) { return state_->submit(std::move(task)); }
void ThreadPool::shutdown(Pending pending) { state_->shutdown(pending); }
void ThreadPool::join() { state_->join(); }
void ThreadPool::wait_idle() { state_->wait_idle(); }
bool ThreadPool::wait_idle_for(absl::Duration timeout) { return state_->wait_idle_for(timeout); }
ThreadPool::Stats ThreadPool::stats() const { return state_->stats(); }
std::size_t ThreadPool::size() const { return state_->size(); }
bool ThreadPool::is_shutdown() const { return state_->is_shutdown(); }
bool ThreadPool::is_worker_thread() const { return state_->is_worker_thread(); }

std::size_t ThreadPool::default_worker_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

}  // namespace offload
