#include "pool.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "checks.h"
#include "fast_call.h"
#include "interpreters.h"
#include "package.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

Ref own(const pyb::handle& h) { return Ref::borrow(h.ptr()); }
Ref own_or_null(const pyb::handle& h) { return h.is_none() ? Ref() : Ref::borrow(h.ptr()); }

Call make_call(const pyb::object& fn, const pyb::tuple& args, const pyb::object& kwargs,
               const pyb::object& context) {
  require_callable(fn);
  return Call{own(fn), own(args), own_or_null(kwargs), own_or_null(context)};
}

// Joins `pool`'s workers with the GIL released; on the main thread it wakes every 100 ms for
// signal handlers, and a Ctrl-C ends the wait with KeyboardInterrupt (as Future.result()).
void join(ThreadPool& pool) {
  const WaitEnd end = wait_without_gil([&pool](absl::Time t) { return pool.join_until(t); },
                                       absl::InfiniteFuture());
  if (end == WaitEnd::kSignal) throw pyb::error_already_set();
}

// Pools whose Python object was collected: their workers finish the queue on their own; the
// exit hook joins them (join_retired_pools) before finalization. Guarded by the GIL.
std::vector<std::shared_ptr<ThreadPool>>& retired_pools() {
  static auto* pools = new std::vector<std::shared_ptr<ThreadPool>>();  // never destroyed
  return *pools;
}
bool exit_hook_ran = false;  // after it, nothing joins retired pools any more: retire() does

void retire(std::shared_ptr<ThreadPool> pool) {
  pool->shutdown(ThreadPool::Pending::kRun);
  if (exit_hook_ran) {  // collected after offload's exit hook (a later atexit handler's pool)
    join(*pool);
    return;
  }
  auto& pools = retired_pools();
  // Those whose workers all exited are joined now (at once), so that none accumulates.
  pools.erase(std::remove_if(pools.begin(), pools.end(),
                             [](const std::shared_ptr<ThreadPool>& p) {
                               if (!p->exited()) return false;
                               p->join();
                               return true;
                             }),
              pools.end());
  pools.push_back(std::move(pool));
}

void join_retired_pools() {
  exit_hook_ran = true;
  auto& pools = retired_pools();
  while (!pools.empty()) {
    std::shared_ptr<ThreadPool> pool = std::move(pools.back());
    pools.pop_back();
    join(*pool);
  }
}

}  // namespace

PyPool::PyPool(std::size_t workers, std::string name, pyb::object initializer,
               pyb::tuple initargs, std::optional<std::string> interpreter_bootstrap,
               std::string separator, bool on_demand, std::uint64_t thread_token,
               bool log_initializer_errors)
    : workers_(workers == 0 ? ThreadPool::default_worker_count() : workers),
      name_(std::move(name)),
      separator_(std::move(separator)),
      on_demand_(on_demand),
      init_(std::make_shared<Initializer>()) {
  require_connected();  // its workers announce themselves through the package's hooks
  init_->fn = own_or_null(initializer);
  init_->args = own(initargs);
  init_->token = thread_token;
  init_->log_errors = log_initializer_errors;
  if (interpreter_bootstrap) {
    if (!kInterpretersSupported) {
      throw std::runtime_error("offload: worker interpreters need Python 3.12 or newer");
    }
    init_->bootstrap = std::move(*interpreter_bootstrap);
  }
  start();
}

PyPool::~PyPool() {
  if (pool_) retire(std::move(pool_));
}

void PyPool::map_on_loop(const std::shared_ptr<Notifier>& notifier, const pyb::object& loop_future,
                 const pyb::object& fn, const pyb::sequence& items, const pyb::object& context) {
  require_callable(fn);
  // A tuple of the map's own: nothing can change the items while workers read them.
  Ref copy = Ref::steal(PySequence_Tuple(items.ptr()));
  if (!copy) throw pyb::error_already_set();
  check(submit_map(pool(), notifier, own(loop_future), own(fn), std::move(copy), own_or_null(context)));
}

PyFuture PyPool::submit(const pyb::object& fn, const pyb::tuple& args, const pyb::object& kwargs,
                const pyb::object& context) {
  Future<Outcome> future;
  check(submit_future_call(pool(), make_call(fn, args, kwargs, context), &future));
  return PyFuture(std::move(future));
}

void PyPool::submit_concurrent(const pyb::object& cf_future, const pyb::object& fn,
                       const pyb::tuple& args, const pyb::object& kwargs,
                       const pyb::object& context) {
  check(submit_concurrent_call(pool(), own(cf_future), make_call(fn, args, kwargs, context),
                               init_->broken));
}

void PyPool::shutdown(bool wait, bool cancel_pending) {
  shut_down_ = true;
  if (!pool_) return;
  // With the GIL held: dropped jobs settle their futures and run done callbacks here.
  pool_->shutdown(cancel_pending ? ThreadPool::Pending::kCancel : ThreadPool::Pending::kRun);
  if (wait) {
    // Keeps the pool alive while the GIL is released, whatever another thread does to
    // pool_ meanwhile (stop_workers before a fork, say).
    std::shared_ptr<ThreadPool> pool = pool_;
    join(*pool);
  }
}

pyb::dict PyPool::stats() const {
  ThreadPool::Stats s;
  if (pool_) s = pool_->stats();
  pyb::dict d;
  d["workers"] = workers_;
  d["submitted"] = s.submitted;
  d["completed"] = s.completed;
  d["failed"] = s.failed;
  d["cancelled"] = s.cancelled;
  d["queued"] = s.queued;
  d["busy"] = s.busy;
  d["threads"] = s.threads;
  return d;
}

void PyPool::stop_workers() {
  while (pool_) {
    std::shared_ptr<ThreadPool> old = std::move(pool_);
    old->shutdown(ThreadPool::Pending::kRun);
    join(*old);
  }
}

void PyPool::after_fork_in_child() {
  if (pool_) new std::shared_ptr<ThreadPool>(std::move(pool_));  // leaked on purpose
}

ThreadPool& PyPool::pool() {
  if (shut_down_) throw std::runtime_error("offload: cannot submit to a pool that was shut down");
  // Past the atexit hooks no worker may take the GIL again: a call submitted now (from a
  // __del__ run by finalization, say) could never run, and its caller would wait forever.
  if (is_finalizing()) {
    throw std::runtime_error("offload: cannot submit while the interpreter is shutting down");
  }
  if (!pool_) start();
  return *pool_;
}

void PyPool::start() {
  ThreadPool::Options options;
  options.workers = workers_;
  options.start_on_demand = on_demand_;
  options.name = name_;
  options.separator = separator_;
  options.hooks.on_start = [init = init_, prefix = name_ + separator_](std::size_t index) {
    WorkerGil::set_identity(prefix + std::to_string(index), index, init->token);
    if ((!init->fn && init->bootstrap.empty()) || !WorkerGil::ensure()) return;
    if (!init->bootstrap.empty()) start_worker_interpreter(init->bootstrap);
    if (!init->fn) {
      WorkerGil::release();
      return;
    }
    Ref r = Ref::steal(PyObject_Call(init->fn.get(), init->args.get(), nullptr));
    if (!r) {
      Ref error = fetch_error();
      if (init->log_errors) {
        log_error("offload: a worker initializer failed; the pool is broken", error.get());
      }
      init->broken->store(true, std::memory_order_release);
    }
    WorkerGil::release();
  };
  options.hooks.after_batch = [] { WorkerGil::release(); };
  options.hooks.on_stop = [] {
    stop_worker_interpreter();
    WorkerGil::stop();
  };
  pool_ = std::make_shared<ThreadPool>(std::move(options));
}

void abandon_retired_pools_after_fork() {
  new std::vector<std::shared_ptr<ThreadPool>>(std::move(retired_pools()));  // leaked on purpose
  retired_pools().clear();
}

void bind_pool(pyb::module_& m) {
  pyb::class_<PyPool>(m, "Pool")
      .def(pyb::init<std::size_t, std::string, pyb::object, pyb::tuple, std::optional<std::string>,
                     std::string, bool, std::uint64_t, bool>(),
           pyb::arg("workers"), pyb::arg("name"), pyb::arg("initializer") = pyb::none(),
           pyb::arg("initargs") = pyb::tuple(), pyb::arg("interpreter_bootstrap") = pyb::none(),
           pyb::arg("separator") = "-", pyb::arg("on_demand") = false,
           pyb::arg("thread_token") = 0, pyb::arg("log_initializer_errors") = true)
      .def("runner",
           [](pyb::object self, const std::string& name) {
             return pyb::reinterpret_steal<pyb::object>(
                 make_runner(self.cast<PyPool&>(), self, name));
           },
           pyb::arg("name") = "offload.run")
      .def("map_on_loop", &PyPool::map_on_loop)
      .def("submit", &PyPool::submit)
      .def("submit_concurrent", &PyPool::submit_concurrent)
      .def("shutdown", &PyPool::shutdown, pyb::arg("wait"), pyb::arg("cancel_pending"))
      .def("stats", &PyPool::stats)
      .def("after_fork_in_child", &PyPool::after_fork_in_child)
      .def("stop_workers", &PyPool::stop_workers)
      .def("is_worker_thread", &PyPool::is_worker_thread)
      .def_property_readonly("workers", &PyPool::workers)
      .def_property_readonly("started", &PyPool::started)
      .def_property_readonly("name", &PyPool::name)
      .def_property_readonly("is_shutdown", &PyPool::is_shutdown)
      .def_property_readonly("broken", &PyPool::broken);
  m.def("default_worker_count", &ThreadPool::default_worker_count);
  m.def("join_retired_pools", &join_retired_pools);
}

}  // namespace offload::py
