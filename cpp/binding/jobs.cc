#include "jobs.h"

#include <algorithm>
#include <optional>
#include <vector>
#include <utility>

namespace offload::py {
namespace {

thread_local const Job* running_job = nullptr;

class CurrentJobScope {
 public:
  explicit CurrentJobScope(const Job* job) : previous_(running_job) { running_job = job; }
  ~CurrentJobScope() { running_job = previous_; }
  CurrentJobScope(const CurrentJobScope&) = delete;
  CurrentJobScope& operator=(const CurrentJobScope&) = delete;

 private:
  const Job* previous_;
};

// The pool task that owns a job: runs it once, or abandons it when destroyed unrun.
// `Ptr` is the job's owning pointer (unique_ptr, or shared_ptr for jobs split over tasks).
template <class J, class Ptr>
class JobTask {
 public:
  explicit JobTask(Ptr job) : job_(std::move(job)) {}
  JobTask(JobTask&&) noexcept = default;
  JobTask& operator=(JobTask&&) noexcept = default;
  ~JobTask() {
    if (job_) J::abandon(std::move(job_));
  }
  void operator()() && { J::run(std::move(job_)); }

 private:
  Ptr job_;
};

// Runs on the worker when the interpreter is finalizing: Python must not be touched, so the
// job's references are leaked on purpose.
template <class Ptr>
void leak(Ptr& job) {
  new Ptr(std::move(job));
}

void report_failure_if(const Outcome& outcome) {
  if (outcome.error) this_task::report(TaskOutcome::kFailed);
}

// ---------------------------------------------------------------------------------------------

class LoopCall final : public Job {
 public:
  LoopCall(std::shared_ptr<Notifier> notifier, Ref future, Call call)
      : notifier_(std::move(notifier)), future_(std::move(future)), call_(std::move(call)) {}

  bool cancel_requested() const override { return future_done(future_.get()); }
  PyObject* loop_future() const override { return future_.get(); }

  static void run(std::unique_ptr<LoopCall> job) {
    if (!WorkerGil::ensure()) return leak(job);
    // Its awaiter cancelled it before it started. A closed loop cancels nothing (closed-loop
    // policy): a call submitted and never awaited still runs, as run_in_executor's would; only
    // its result is released.
    if (future_done(job->future_.get())) {
      this_task::report(TaskOutcome::kCancelled);
      return;
    }
    {
      CurrentJobScope scope(job.get());
      const Call& c = job->call_;
      job->outcome_ = call(c.fn.get(), c.args.get(), c.kwargs.get(), c.context.get());
    }
    report_failure_if(*job->outcome_);
    job->call_ = Call{};  // drop the arguments now, while the GIL is held
    WorkerGil::yield_if_due();
    deliver(std::move(job));
  }

  // Unrun: the loop cancels the future.
  static void abandon(std::unique_ptr<LoopCall> job) { deliver(std::move(job)); }

 private:
  static void deliver(std::unique_ptr<LoopCall> job) {
    Notifier& notifier = *job->notifier_;
    // Refused (the loop is gone): the job is destroyed and its references released.
    (void)notifier.add([job = std::move(job)] {
      complete_loop_future(job->future_.get(), job->outcome_ ? &*job->outcome_ : nullptr);
    });
  }

  std::shared_ptr<Notifier> notifier_;
  Ref future_;
  Call call_;
  std::optional<Outcome> outcome_;
};

// ---------------------------------------------------------------------------------------------

// The items are a tuple of the map's own and the results a C++ vector until delivery: no
// container that other threads fill is ever visible to Python (a gc walk, a referrer search
// would find NULL slots in a list being filled), and nothing can change the items meanwhile.
class MapCall final : public Job {
 public:
  MapCall(std::shared_ptr<Notifier> notifier, Ref future, Ref fn, Ref items, Ref context,
          std::size_t block, std::size_t tasks)
      : notifier_(std::move(notifier)),
        future_(std::move(future)),
        fn_(std::move(fn)),
        items_(std::move(items)),
        context_(std::move(context)),
        size_(static_cast<std::size_t>(PyTuple_GET_SIZE(items_.get()))),
        results_(size_),
        block_(block),
        tasks_left_(tasks) {}

  bool cancel_requested() const override {
    return stop_.load(std::memory_order_relaxed) || future_done(future_.get());
  }
  PyObject* loop_future() const override { return future_.get(); }

  static void run(std::shared_ptr<MapCall> job) {
    if (!WorkerGil::ensure()) return leak(job);
    {
      CurrentJobScope scope(job.get());
      job->work();
    }
    finish_task(std::move(job));
  }

  static void abandon(std::shared_ptr<MapCall> job) { finish_task(std::move(job)); }

 private:
  // Claims blocks of items until none are left or the map stops. GIL held.
  void work() {
    while (!stop_.load(std::memory_order_relaxed)) {
      if (future_done(future_.get())) {  // cancelled (a closed loop cancels nothing)
        stop_.store(true, std::memory_order_relaxed);
        break;
      }
      const std::size_t begin = next_.fetch_add(block_, std::memory_order_relaxed);
      if (begin >= size_) break;
      const std::size_t end = std::min(size_, begin + block_);
      for (std::size_t i = begin; i < end; ++i) {
        if (!run_item(i)) {
          stop_.store(true, std::memory_order_relaxed);
          break;
        }
      }
      WorkerGil::yield_if_due();
    }
  }

  // Runs item i in its own copy of the caller's context; false on error. GIL held.
  bool run_item(std::size_t i) {
    Ref context;
    if (context_) {
      context = Ref::steal(PyContext_Copy(context_.get()));
      if (!context) return record_error(i, fetch_error());
    }
    Outcome outcome = call_one(fn_.get(), PyTuple_GET_ITEM(items_.get(), i), context.get());
    if (outcome.error) return record_error(i, std::move(outcome.error));
    results_[i] = std::move(outcome.value);  // this item's own slot: no other worker writes it
    ++done_;
    return true;
  }

  bool record_error(std::size_t i, Ref error) {
    if (!error_ || i < error_index_) {
      error_ = std::move(error);
      error_index_ = i;
    }
    return false;
  }

  static void finish_task(std::shared_ptr<MapCall> job) {
    if (job->tasks_left_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    Notifier& notifier = *job->notifier_;
    (void)notifier.add([job = std::move(job)] { job->deliver(); });
  }

  // On the loop thread, after every task finished. GIL held.
  void deliver() {
    Outcome outcome;
    if (error_) {
      outcome.error = std::move(error_);
    } else if (done_ == size_) {
      // Filled in full before anything else runs (no allocation between New and the last
      // SET_ITEM, so no collection sees it half-filled).
      Ref list = Ref::steal(PyList_New(static_cast<Py_ssize_t>(size_)));
      if (!list) {
        outcome.error = fetch_error();
      } else {
        for (std::size_t i = 0; i < size_; ++i) {
          PyList_SET_ITEM(list.get(), static_cast<Py_ssize_t>(i), results_[i].release());
        }
        outcome.value = std::move(list);
      }
    } else {  // stopped by cancellation, or tasks dropped by a shutdown
      complete_loop_future(future_.get(), nullptr);
      return;
    }
    complete_loop_future(future_.get(), &outcome);
  }

  std::shared_ptr<Notifier> notifier_;
  Ref future_;
  Ref fn_;
  Ref items_;  // tuple
  Ref context_;
  const std::size_t size_;
  std::vector<Ref> results_;  // size_ slots, each filled by the worker that runs its item
  const std::size_t block_;
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> tasks_left_;
  std::atomic<bool> stop_{false};
  // Written by workers under the GIL; read by deliver() after the last task finished.
  std::size_t done_ = 0;
  std::size_t error_index_ = 0;
  Ref error_;
};

// ---------------------------------------------------------------------------------------------

class FutureCall final : public Job {
 public:
  explicit FutureCall(Call call) : call_(std::move(call)) {}

  Future<Outcome> future() const { return promise_.get_future(); }
  bool cancel_requested() const override { return promise_.cancel_requested(); }

  static void run(std::unique_ptr<FutureCall> job) {
    if (!WorkerGil::ensure()) return leak(job);
    if (!job->promise_.start()) {
      this_task::report(TaskOutcome::kCancelled);
      return;
    }
    Outcome outcome;
    {
      this_task::CancellationScope cancellation(job->promise_.cancel_flag());
      CurrentJobScope scope(job.get());
      const Call& c = job->call_;
      outcome = call(c.fn.get(), c.args.get(), c.kwargs.get(), c.context.get());
    }
    report_failure_if(outcome);
    job->call_ = Call{};
    // Continuations (done callbacks, awaiting loops) run here, with the GIL held.
    job->promise_.set_value(std::move(outcome));
    // Before the GIL can be handed over: a thread that sees the future settled then finds its
    // offload.Future the state's only handle, which Python's gc may traverse (module.cc).
    job.reset();
    WorkerGil::yield_if_due();
  }

  // Unrun: destroying the promise settles the future as cancelled.
  static void abandon(std::unique_ptr<FutureCall>) {}

 private:
  Promise<Outcome> promise_;
  Call call_;
};

// ---------------------------------------------------------------------------------------------

class ConcurrentCall final : public Job {
 public:
  ConcurrentCall(Ref future, Call call, std::shared_ptr<const std::atomic<bool>> broken)
      : future_(std::move(future)), call_(std::move(call)), broken_(std::move(broken)) {}

  // concurrent.futures has no way to ask a running call to stop.
  bool cancel_requested() const override { return false; }

  static void run(std::unique_ptr<ConcurrentCall> job) {
    if (!WorkerGil::ensure()) return leak(job);
    PyObject* future = job->future_.get();
    Ref running = Ref::steal(PyObject_CallMethodNoArgs(future, names().set_running_or_notify_cancel));
    if (!running) {
      log_raised("offload: a concurrent.futures.Future refused to start");
      return;
    }
    if (running.get() != Py_True) {  // cancelled before it started
      this_task::report(TaskOutcome::kCancelled);
      return;
    }
    Outcome outcome;
    if (job->broken_ && job->broken_->load(std::memory_order_acquire)) {
      outcome.error = broken_pool_error();
    } else {
      CurrentJobScope scope(job.get());
      const Call& c = job->call_;
      outcome = call(c.fn.get(), c.args.get(), c.kwargs.get(), c.context.get());
    }
    report_failure_if(outcome);
    job->call_ = Call{};
    Ref r = outcome.error ? Ref::steal(PyObject_CallMethodOneArg(future, names().set_exception,
                                                                  outcome.error.get()))
                          : Ref::steal(PyObject_CallMethodOneArg(future, names().set_result,
                                                                  outcome.value.get()));
    if (!r) log_raised("offload: a concurrent.futures.Future refused its outcome");
    WorkerGil::yield_if_due();
  }

  // Unrun (shutdown with cancel_futures): cancel the concurrent future, as the standard
  // library's executor does.
  static void abandon(std::unique_ptr<ConcurrentCall> job) {
    GilScope gil;
    if (!gil.acquired()) return leak(job);
    Ref r = Ref::steal(PyObject_CallMethodNoArgs(job->future_.get(), names().cancel));
    if (!r) log_raised("offload: a concurrent.futures.Future refused to be cancelled");
  }

 private:
  static Ref broken_pool_error() {
    Ref module = Ref::steal(PyImport_ImportModule("concurrent.futures.thread"));
    Ref type = module ? Ref::steal(PyObject_GetAttrString(module.get(), "BrokenThreadPool"))
                      : Ref();
    Ref error = type ? Ref::steal(PyObject_CallFunction(
                           type.get(), "s",
                           "A thread initializer failed, the thread pool is not usable anymore"))
                     : Ref();
    return error ? std::move(error) : fetch_error();
  }

  Ref future_;
  Call call_;
  std::shared_ptr<const std::atomic<bool>> broken_;
};

template <class J, class Ptr>
absl::Status submit_job(ThreadPool& pool, Ptr job) {
  return pool.submit(JobTask<J, Ptr>(std::move(job)));
}

}  // namespace

const Job* current_job() { return running_job; }

absl::Status submit_loop_call(ThreadPool& pool, std::shared_ptr<Notifier> notifier,
                              Ref loop_future, Call call) {
  return submit_job<LoopCall>(
      pool, std::make_unique<LoopCall>(std::move(notifier), std::move(loop_future), std::move(call)));
}

absl::Status submit_map(ThreadPool& pool, std::shared_ptr<Notifier> notifier, Ref loop_future,
                        Ref fn, Ref items, Ref context) {
  const std::size_t size = static_cast<std::size_t>(PyTuple_GET_SIZE(items.get()));
  const std::size_t workers = pool.size();
  // Blocks small enough to balance uneven items over every worker, large enough that claiming
  // one is rare next to running it.
  const std::size_t block = std::clamp<std::size_t>(size / (workers * 8), 1, 256);
  const std::size_t tasks = std::min(workers, (size + block - 1) / block);
  auto job = std::make_shared<MapCall>(std::move(notifier), std::move(loop_future),
                                       std::move(fn), std::move(items), std::move(context), block,
                                       tasks);
  // Every task is offered even after a refusal: a refused task is abandoned, which counts it
  // as finished, so the last one still delivers.
  absl::Status first_error;
  for (std::size_t i = 0; i < tasks; ++i) {
    absl::Status status = submit_job<MapCall>(pool, job);
    if (first_error.ok()) first_error = status;
  }
  return first_error;
}

absl::Status submit_future_call(ThreadPool& pool, Call call, Future<Outcome>* future) {
  auto job = std::make_unique<FutureCall>(std::move(call));
  *future = job->future();
  return submit_job<FutureCall>(pool, std::move(job));
}

absl::Status submit_concurrent_call(ThreadPool& pool, Ref cf_future, Call call,
                                    std::shared_ptr<const std::atomic<bool>> broken) {
  return submit_job<ConcurrentCall>(
      pool, std::make_unique<ConcurrentCall>(std::move(cf_future), std::move(call), std::move(broken)));
}

void bind_jobs(pybind11::module_& m) {
  m.def("cancelled", [] {
    const Job* job = current_job();
    return job != nullptr && job->cancel_requested();
  });
  m.def("current_call", []() -> pybind11::object {
    const Job* job = current_job();
    PyObject* future = job != nullptr ? job->loop_future() : nullptr;
    return future != nullptr ? pybind11::reinterpret_borrow<pybind11::object>(future)
                             : pybind11::none();
  });
}

}  // namespace offload::py
