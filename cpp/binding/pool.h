// offload._core.Pool: a ThreadPool whose workers run Python jobs (jobs.h), behind offload.Pool,
// offload.Executor and offload.InterpreterPool. A pybind11 class: the per-call hot path of
// Pool.run goes through fast_call.h instead, which calls run_on_loop directly.
//
// Pools whose Python object is collected are retired, not joined (ThreadPoolExecutor does not
// wait either): their workers finish the queue and exit on their own, and offload's exit hook
// joins them (join_retired_pools) before the interpreter finalizes.

#ifndef OFFLOAD_BINDING_POOL_H_
#define OFFLOAD_BINDING_POOL_H_

#include <pybind11/pybind11.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "future.h"
#include "jobs.h"
#include "offload/notifier.h"
#include "offload/thread_pool.h"
#include "python_runtime.h"

namespace offload::py {

class PyPool {
 public:
  // With `interpreter_bootstrap`, every worker owns an own-GIL subinterpreter set up by that
  // source (interpreters.h); calls reach it through run_in_interpreter.
  PyPool(std::size_t workers, std::string name, pybind11::object initializer,
         pybind11::tuple initargs, std::optional<std::string> interpreter_bootstrap,
         std::string separator, bool on_demand, std::uint64_t thread_token,
         bool log_initializer_errors);

  // Collected: as ThreadPoolExecutor, it does not wait. The workers finish the queue and exit;
  // the pool is retired for the exit hook to join.
  ~PyPool();

  // fn(*args, **kwargs) for `loop_future` (a Call), delivered through `notifier`. Throws
  // std::runtime_error when the pool is shut down (pybind11 and fast_call.cc turn it into
  // RuntimeError).
  void run_on_loop(std::shared_ptr<Notifier> notifier, PyObject* loop_future, Call call) {
    check(submit_loop_call(pool(), std::move(notifier), Ref::borrow(loop_future), std::move(call)));
  }

  void map_on_loop(const std::shared_ptr<Notifier>& notifier, const pybind11::object& loop_future,
                   const pybind11::object& fn, const pybind11::sequence& items,
                   const pybind11::object& context);

  PyFuture submit(const pybind11::object& fn, const pybind11::tuple& args,
                  const pybind11::object& kwargs, const pybind11::object& context);

  void submit_concurrent(const pybind11::object& cf_future, const pybind11::object& fn,
                         const pybind11::tuple& args, const pybind11::object& kwargs,
                         const pybind11::object& context);

  // Stops intake; `cancel_pending` drops queued calls (their futures are cancelled); `wait`
  // joins the workers with the GIL released. On the main thread Ctrl-C interrupts the wait
  // (KeyboardInterrupt; the pool stays shut down, its workers finish on their own).
  void shutdown(bool wait, bool cancel_pending);

  pybind11::dict stats() const;

  // Lets the workers finish the queue, joins them (ending their interpreters) and forgets
  // them; the next call starts new ones. CPython cannot fork while a subinterpreter exists
  // (the child aborts, gh-101437), so InterpreterPools do this before a fork. A pool that
  // another thread restarted while the GIL was released is stopped again: when this returns
  // (GIL held) no worker of this pool exists.
  void stop_workers();

  // In a forked child the workers are gone and the core's locks may be held by threads that no
  // longer exist: abandon the old pool without touching it and start afresh on next use.
  void after_fork_in_child();

  std::size_t workers() const { return workers_; }
  std::size_t started() const { return pool_ ? pool_->started() : 0; }
  const std::string& name() const { return name_; }
  bool is_shutdown() const { return shut_down_; }
  bool broken() const { return init_->broken->load(std::memory_order_acquire); }
  bool is_worker_thread() const { return pool_ && pool_->is_worker_thread(); }

 private:
  struct Initializer {
    Ref fn;  // null: none
    Ref args;
    bool log_errors = true;  // a failing fn is logged on "offload" (else the caller's fn logs)
    std::uint64_t token = 0;  // handed to offload._threads with each worker (0: none)
    std::string bootstrap;  // empty: no worker interpreters
    std::shared_ptr<std::atomic<bool>> broken = std::make_shared<std::atomic<bool>>(false);
  };

  // The running pool, started on first use (and again after a fork or stop_workers). Throws
  // once shut down, or once the interpreter is finalizing.
  ThreadPool& pool();
  void start();

  static void check(const absl::Status& status) {
    if (!status.ok()) throw std::runtime_error(std::string(status.message()));
  }

  const std::size_t workers_;
  const std::string name_;
  const std::string separator_;  // threads are named name_ + separator_ + index
  const bool on_demand_;         // workers start as calls need them (ThreadPool::Options)
  std::shared_ptr<Initializer> init_;
  std::shared_ptr<ThreadPool> pool_;  // null after a fork until next use
  bool shut_down_ = false;            // guarded by the GIL
};

// In a forked child: forgets the parent's retired pools without touching them (their threads
// do not exist here).
void abandon_retired_pools_after_fork();

// Adds Pool, join_retired_pools and default_worker_count to the module.
void bind_pool(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_POOL_H_
