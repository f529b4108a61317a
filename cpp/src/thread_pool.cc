#include "offload/thread_pool.h"

#include <cxxabi.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
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
class ThreadPool::State : public std::enable_shared_from_this<State> {
 public:
  explicit State(Options options)
      : workers_(options.workers == 0 ? default_worker_count() : options.workers),
        start_on_demand_(options.start_on_demand),
        name_(std::move(options.name)),
        separator_(std::move(options.separator)),
        max_batch_(std::max<std::size_t>(1, options.max_batch)),
        hooks_(std::move(options.hooks)) {}

  // Starts every worker of a pool that does not start them on demand, or none: when the system
  // refuses a thread, the ones already started are told to stop and detached (they hold the
  // State and exit on their own, after their on_start hook, which may need a lock the caller
  // holds, such as Python's GIL), and the error names how far it got.
  void start_all() {
    if (start_on_demand_) return;
    std::vector<std::thread> started;
    std::string failure;
    {
      absl::MutexLock l(&mu_);
      threads_.reserve(workers_);
      for (std::size_t i = 0; i < workers_; ++i) {
        Task none;
        if (start_worker_locked(&none, &failure)) continue;
        failure = "offload: could not start all " + std::to_string(workers_) + " workers (thread " +
                  std::to_string(i + 1) + " failed): " + failure;
        stopping_ = true;
        wake_all_locked();
        started.swap(threads_);
        break;
      }
    }
    if (failure.empty()) return;
    for (std::thread& t : started) t.detach();
    throw std::runtime_error(failure);
  }

  absl::Status submit(Task task) {
    std::deque<Task> stranded;  // tasks no worker could ever run (destroyed outside the lock)
    {
      absl::MutexLock l(&mu_);
      if (!stopping_) {
        ++submitted_;
        queue_.push_back(std::move(task));
        if (!parked_.empty()) {
          wake_one_locked();
          return absl::OkStatus();
        }
        if (waking_ >= queue_.size()) return absl::OkStatus();  // a woken worker will take it
        if (current_pool() == this && !lent_) {
          lent_ = true;  // see "Lending" in the header; returned when the current task ends
          ++loans_;
        }
        if (!can_start_locked()) return absl::OkStatus();
        Task first = pop_locked();  // the head goes with the new worker: FIFO holds
        std::string failure;
        if (start_worker_locked(&first, &failure)) return absl::OkStatus();
        queue_.push_front(std::move(first));
        if (staffed_ > 0) return absl::OkStatus();  // the workers there are will get to it
        cancelled_ += queue_.size();
        stranded.swap(queue_);
        if (busy_ == 0) idle_cv_.SignalAll();
      }
    }
    if (!stranded.empty()) {
      stranded.clear();
      return absl::ResourceExhaustedError(
          "offload: the pool has no worker and the system refused to start one");
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
      wake_all_locked();
    }
    dropped.clear();  // outside the lock
  }
  // Waits until every worker has exited, then joins their threads (a non-worker) or detaches
  // them (a worker: two workers joining each other would deadlock; it waits only until the
  // workers left are themselves inside join(), and exits once its own task returns). False,
  // with nothing joined, when `deadline` passes first; it may be called again.
  bool join_until(absl::Time deadline) {
    const bool worker = is_worker_thread();
    std::vector<std::thread> threads;
    {
      absl::MutexLock l(&mu_);
      if (worker) ++workers_in_join_;
      while (alive_ > (worker ? workers_in_join_ : 0)) {
        if (exit_cv_.WaitWithDeadline(&mu_, deadline) && alive_ > (worker ? workers_in_join_ : 0)) {
          if (worker) --workers_in_join_;
          return false;
        }
      }
      if (worker) --workers_in_join_;
      threads.swap(threads_);
    }
    for (std::thread& t : threads) {
      if (worker) {
        t.detach();  // each keeps the State alive through its own shared_ptr
      } else {
        t.join();  // returns at once: its worker has exited
      }
    }
    return true;
  }

  bool exited() const {
    absl::MutexLock l(&mu_);
    return alive_ == 0;
  }

  std::size_t started() const {
    absl::MutexLock l(&mu_);
    return next_index_;
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
    s.threads = staffed_;
    return s;
  }

  std::size_t size() const { return workers_; }

  bool is_shutdown() const {
    absl::MutexLock l(&mu_);
    return stopping_;
  }

  bool is_worker_thread() const { return current_pool() == this; }

  // The pool whose worker runs on this thread, if any.
  static State*& current_pool() {
    thread_local State* pool = nullptr;
    return pool;
  }

  // On a worker: whether its current task lent the worker's place (guarded by mu_ when read
  // or written by submit; only this worker's thread touches it).
  static inline thread_local bool lent_ = false;

  // Compensation: while a worker waits for other work, one more worker may run (see the header).
  void begin_blocking() {
    absl::MutexLock l(&mu_);
    ++blocked_;
    if (queue_.size() <= parked_.size() + waking_ || !can_start_locked()) return;
    Task first = pop_locked();
    std::string failure;
    if (!start_worker_locked(&first, &failure)) queue_.push_front(std::move(first));
  }

  void end_blocking() {
    absl::MutexLock l(&mu_);
    --blocked_;
    retire_surplus_locked();
  }

 private:
  // A parked worker: it sleeps until a submitter claims it (woken) or the pool stops.
  struct Parked {
    absl::CondVar cv;
    bool woken = false;
  };

  bool idle_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && busy_ == 0;
  }

  // The most workers that may run now: the limit, plus one per blocked worker and per loan.
  std::size_t allowed_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return workers_ + blocked_ + loans_;
  }

  // Whether one more worker may start now: below what is allowed, and either on demand or to
  // compensate for a blocked or lending worker.
  bool can_start_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !stopping_ && (start_on_demand_ || blocked_ + loans_ > 0) &&
           staffed_ < allowed_locked();
  }

  // More workers than allowed (compensation no longer needed).
  bool surplus_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return staffed_ > allowed_locked();
  }

  // Starts a worker that runs `*first` (if any; counted busy) before it takes from the queue.
  // On failure `*first` is given back and `*failure` says why. The thread is made under the
  // lock, so that it is listed in threads_ before it can look for itself there.
  bool start_worker_locked(Task* first, std::string* failure) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::size_t index = next_index_++;
    const bool has_first = static_cast<bool>(*first);
    if (has_first) {
      first_tasks_.emplace(index, std::move(*first));
      ++busy_;
    }
    ++alive_;
    ++staffed_;
    try {
      threads_.emplace_back([self = shared_from_this(), index] { self->work(index); });
      return true;
    } catch (const std::system_error& error) {
      --alive_;
      --staffed_;
      if (has_first) {
        --busy_;
        auto it = first_tasks_.find(index);
        *first = std::move(it->second);
        first_tasks_.erase(it);
      }
      *failure = error.what();
      return false;
    }
  }

  // Claims the most recently parked worker (LIFO: its cache is warm) and wakes it.
  void wake_one_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Parked* parked = parked_.back();
    parked_.pop_back();
    parked->woken = true;
    ++waking_;
    parked->cv.Signal();
  }

  // More workers than allowed now: a parked one is woken, finds the queue empty and exits (a
  // busy one exits when it next finds the queue empty).
  void retire_surplus_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (surplus_locked() && queue_.empty() && !parked_.empty()) wake_one_locked();
  }

  void wake_all_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!parked_.empty()) wake_one_locked();
  }

  // The next task for a worker between batches, parking while there is none; false when the
  // worker must exit (shut down and drained, or surplus).
  bool next_task_locked(Task* task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (queue_.empty()) {
      if (stopping_ || surplus_locked()) {
        --staffed_;  // at once, so that no other worker also takes itself for surplus
        return false;
      }
      Parked parked;
      parked_.push_back(&parked);
      while (!parked.woken) parked.cv.Wait(&mu_);
      --waking_;
    }
    *task = pop_locked();
    return true;
  }

  void set_thread_name(std::size_t index) const {
    pthread_setname_np(pthread_self(), thread_name(name_, separator_, index).c_str());
  }

  void work(std::size_t index) {
    current_pool() = this;
    set_thread_name(index);
    Task task;
    {
      absl::MutexLock l(&mu_);
      auto it = first_tasks_.find(index);
      if (it != first_tasks_.end()) {
        task = std::move(it->second);  // counted busy by the thread that started this one
        first_tasks_.erase(it);
      }
    }
    if (hooks_.on_start) hooks_.on_start(index);
    if (!task) {
      absl::MutexLock l(&mu_);
      if (next_task_locked(&task)) ++busy_;
    }
    while (task) {
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
      // Listed as parked (claimable) before the after_batch hook hands the GIL over: the
      // thread that gets the GIL next and submits finds this worker, rather than starting
      // another. It counts as busy until the hook returned (wait_idle() waits for hooks too).
      Parked parked;
      bool listed = false;
      {
        absl::MutexLock l(&mu_);
        if (queue_.empty() && !stopping_ && !surplus_locked()) {
          parked_.push_back(&parked);
          listed = true;
        }
      }
      if (hooks_.after_batch) hooks_.after_batch();
      absl::MutexLock l(&mu_);
      --busy_;
      if (idle_locked()) idle_cv_.SignalAll();
      if (listed) {
        while (!parked.woken) parked.cv.Wait(&mu_);
        --waking_;
      }
      if (next_task_locked(&task)) ++busy_;
    }
    if (hooks_.on_stop) hooks_.on_stop();
    current_pool() = nullptr;
    absl::MutexLock l(&mu_);
    if (!stopping_) {
      // A surplus worker retires: nobody will join it, so it lets its thread go. (Workers
      // stopped by shutdown stay in threads_ for join(), which waits for them.)
      const auto me = std::this_thread::get_id();
      for (auto it = threads_.begin(); it != threads_.end(); ++it) {
        if (it->get_id() != me) continue;
        it->detach();
        threads_.erase(it);
        break;
      }
    }
    --alive_;
    exit_cv_.SignalAll();
  }

  Task pop_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Task task = std::move(queue_.front());
    queue_.pop_front();
    return task;
  }

  void run_one(Task task) {
    run_task(std::move(task));
    if (lent_) {  // the task that lent this worker's place has ended: the loan is returned
      absl::MutexLock l(&mu_);
      lent_ = false;
      --loans_;
      retire_surplus_locked();
    }
  }

  void run_task(Task task) {
    TaskOutcome outcome = TaskOutcome::kCompleted;
    {
      this_task::OutcomeScope scope(&outcome);
      try {
        std::move(task)();
      } catch (abi::__forced_unwind&) {
        throw;  // pthread_exit (CPython ends a thread that wants the GIL while it finalizes)
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
  const bool start_on_demand_;
  const std::string name_;
  const std::string separator_;
  const std::size_t max_batch_;
  const Hooks hooks_;

  mutable absl::Mutex mu_;
  absl::CondVar idle_cv_;  // signalled when the pool becomes idle
  absl::CondVar exit_cv_;  // signalled when a worker exits
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::size_t alive_ ABSL_GUARDED_BY(mu_) = 0;  // workers that have not exited
  std::size_t staffed_ ABSL_GUARDED_BY(mu_) = 0;  // of those, the ones not on their way out
  std::size_t workers_in_join_ ABSL_GUARDED_BY(mu_) = 0;  // workers blocked in join()
  std::vector<Parked*> parked_ ABSL_GUARDED_BY(mu_);  // parked workers, not yet claimed
  std::map<std::size_t, Task> first_tasks_ ABSL_GUARDED_BY(mu_);  // by worker index, until taken
  std::size_t waking_ ABSL_GUARDED_BY(mu_) = 0;  // claimed from parked_, not yet running
  std::size_t next_index_ ABSL_GUARDED_BY(mu_) = 0;  // of the next worker started
  std::size_t blocked_ ABSL_GUARDED_BY(mu_) = 0;  // workers inside a BlockingScope
  std::size_t loans_ ABSL_GUARDED_BY(mu_) = 0;  // workers whose current task lent its place
  std::size_t busy_ ABSL_GUARDED_BY(mu_) = 0;  // workers running a batch
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::uint64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t cancelled_ ABSL_GUARDED_BY(mu_) = 0;  // dropped by shutdown(kCancel)
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> task_cancelled_{0};  // reported by tasks
};

ThreadPool::ThreadPool(Options options) : state_(std::make_shared<State>(std::move(options))) {
  state_->start_all();
}

ThreadPool::~ThreadPool() {
  state_->shutdown(Pending::kRun);
  state_->join_until(absl::InfiniteFuture());
}

absl::Status ThreadPool::submit(Task task) { return state_->submit(std::move(task)); }
void ThreadPool::shutdown(Pending pending) { state_->shutdown(pending); }
void ThreadPool::join() { state_->join_until(absl::InfiniteFuture()); }
bool ThreadPool::join_until(absl::Time deadline) { return state_->join_until(deadline); }
bool ThreadPool::exited() const { return state_->exited(); }
std::size_t ThreadPool::started() const { return state_->started(); }
void ThreadPool::wait_idle() { state_->wait_idle(); }
bool ThreadPool::wait_idle_for(absl::Duration timeout) { return state_->wait_idle_for(timeout); }
ThreadPool::Stats ThreadPool::stats() const { return state_->stats(); }
std::size_t ThreadPool::size() const { return state_->size(); }
bool ThreadPool::is_shutdown() const { return state_->is_shutdown(); }
bool ThreadPool::is_worker_thread() const { return state_->is_worker_thread(); }

std::string ThreadPool::thread_name(const std::string& name, const std::string& separator,
                                    std::size_t index) {
  constexpr std::size_t kLimit = 15;  // the kernel's, without the terminating NUL
  const std::string suffix = separator + std::to_string(index);
  std::string full = name + suffix;
  if (full.size() <= kLimit) return full;
  // Keep the suffix when it fits with at least one byte of the name; else cut the whole.
  std::string head = suffix.size() < kLimit ? name : full;
  std::size_t keep = suffix.size() < kLimit ? kLimit - suffix.size() : kLimit;
  // Never end inside a UTF-8 sequence: back up over continuation bytes (10xxxxxx).
  while (keep > 0 && keep < head.size() &&
         (static_cast<unsigned char>(head[keep]) & 0xC0) == 0x80) {
    --keep;
  }
  head.resize(keep);
  return suffix.size() < kLimit ? head + suffix : head;
}

ThreadPool::BlockingScope::BlockingScope() : pool_(State::current_pool()) {
  if (pool_ != nullptr) pool_->begin_blocking();
}

ThreadPool::BlockingScope::~BlockingScope() {
  if (pool_ != nullptr) pool_->end_blocking();
}

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
