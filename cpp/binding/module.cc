// offload._core: the pybind11 face of the C++ core. Thin: it converts types and owns the GIL
// rules (python_runtime.h); the ergonomic API lives in the Python package.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "call.h"
#include "channels.h"
#include "collectable.h"
#include "interpreters.h"
#include "jobs.h"
#include "loop_registry.h"
#include "offload/future.h"
#include "offload/notifier.h"
#include "offload/thread_pool.h"
#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

// Imported once at module load; never released (they live as long as the process).
struct Imports {
  PyObject* timeout_error;    // concurrent.futures.TimeoutError
  PyObject* cancelled_error;  // concurrent.futures.CancelledError
};
Imports imports;

Ref own(const pyb::handle& h) { return Ref::borrow(h.ptr()); }
Ref own_or_null(const pyb::handle& h) { return h.is_none() ? Ref() : Ref::borrow(h.ptr()); }

void require_callable(const pyb::handle& fn) {
  if (!PyCallable_Check(fn.ptr())) {
    throw pyb::type_error("offload: expected a callable, got " +
                          std::string(Py_TYPE(fn.ptr())->tp_name) + " object");
  }
}

Call make_call(const pyb::object& fn, const pyb::tuple& args, const pyb::object& kwargs,
               const pyb::object& context) {
  require_callable(fn);
  return Call{own(fn), own(args), own_or_null(kwargs), own_or_null(context)};
}

// ---------------------------------------------------------------------------------------------
// Future: the core Future<Outcome> behind offload.Future.

class PyFuture {
 public:
  explicit PyFuture(Future<Outcome> future) : future_(std::move(future)) {}

  // Waits with the GIL released (wait_without_gil: Ctrl-C works on the main thread).
  bool wait(std::optional<double> timeout) const {
    if (future_.is_ready()) return true;
    const WaitEnd end = wait_without_gil([&](absl::Time t) { return future_.wait_until(t); },
                                         deadline_after(timeout ? &*timeout : nullptr));
    if (end == WaitEnd::kSignal) throw pyb::error_already_set();
    return end == WaitEnd::kReady;
  }

  // The outcome of a settled future; null when it was cancelled.
  const Outcome* outcome() const {
    return future_.has_value() ? &future_.get() : nullptr;
  }

  pyb::object result(std::optional<double> timeout) const {
    const Outcome* o = settled_outcome(timeout);
    if (o->error) {
      restore_error(o->error.get());
      throw pyb::error_already_set();
    }
    return pyb::reinterpret_borrow<pyb::object>(o->value.get());
  }

  pyb::object exception(std::optional<double> timeout) const {
    const Outcome* o = settled_outcome(timeout);
    return pyb::reinterpret_borrow<pyb::object>(o->error ? o->error.get() : Py_None);
  }

  bool done() const { return future_.is_ready(); }
  bool cancelled() const { return future_.is_cancelled(); }
  bool running() const { return future_.status() == FutureStatus::kRunning; }

  // concurrent.futures semantics: true when the future is (now) cancelled; a running call is
  // asked to stop (offload.cancelled() turns true in it) but the call returns False.
  bool cancel() const {
    future_.cancel();
    return future_.is_cancelled();
  }

  // Calls fn(arg) once the future settles: now if it has, else on the thread that settles it.
  void add_done_callback(const pyb::object& fn, const pyb::object& arg) const {
    require_callable(fn);
    future_.on_settled(inline_executor(), [fn = own(fn), arg = own(arg)] {
      GilScope gil;
      if (!gil.acquired()) return;
      Ref r = Ref::steal(PyObject_CallOneArg(fn.get(), arg.get()));
      if (!r) {
        Ref error = fetch_error();
        log_error("offload: exception calling a done callback", error.get());
      }
    });
  }

  // Completes `loop_future` on its loop (through `notifier`) once this future settles.
  void deliver_to(const std::shared_ptr<Notifier>& notifier, const pyb::object& loop_future) const {
    future_.on_settled(*notifier, [future = future_, loop_future = own(loop_future),
                                   keep_alive = notifier] {
      PyFuture settled(future);
      complete_loop_future(loop_future.get(), settled.outcome());
    });
  }

  std::string state() const {
    switch (future_.status()) {
      case FutureStatus::kPending:
        return "pending";
      case FutureStatus::kRunning:
        return "running";
      case FutureStatus::kCancelled:
        return "cancelled";
      default:
        return "finished";
    }
  }

  // Python's gc (collectable.h) sees the outcome, so that a result or an exception (its
  // traceback's frames) referencing this future is collected with it, as with
  // concurrent.futures. Only once this is the state's only handle: until then the job (which
  // settles it and runs the done callbacks it holds) or a delivery to a loop still shares it,
  // so neither the outcome nor a pending done callback is this object's alone. The worker
  // drops its promise before it can hand the GIL over, so a future seen settled is normally
  // traversable at once.
  int traverse(visitproc visit, void* arg) const {
    const Outcome* o = future_.is_only_handle() ? outcome() : nullptr;
    if (o != nullptr) {
      Py_VISIT(o->value.get());
      Py_VISIT(o->error.get());
    }
    return 0;
  }

  // Garbage: drops this handle, and with it the outcome if it was the only one (with the GIL,
  // outside the state's lock). What is left reads as cancelled: a Promise destroyed unsettled
  // cancels its future.
  void clear() { future_ = Promise<Outcome>().get_future(); }

 private:
  // Waits (raising TimeoutError) and returns the outcome; raises CancelledError.
  const Outcome* settled_outcome(std::optional<double> timeout) const {
    if (!wait(timeout)) {
      PyErr_SetNone(imports.timeout_error);
      throw pyb::error_already_set();
    }
    const Outcome* o = outcome();
    if (o == nullptr) {
      PyErr_SetNone(imports.cancelled_error);
      throw pyb::error_already_set();
    }
    return o;
  }

  Future<Outcome> future_;
};

// A promise settled from Python (offload.from_thread): its future is a PyFuture that threads
// wait on with the GIL released. Destroyed unsettled (a loop that closed with its task still
// queued), it settles the future as cancelled.
class PyPromise {
 public:
  PyFuture future() const { return PyFuture(promise_.get_future()); }

  bool set_result(const pyb::object& value) {
    Outcome outcome;
    outcome.value = own(value);
    return promise_.set_value(std::move(outcome));
  }

  bool set_exception(const pyb::object& error) {
    if (!PyExceptionInstance_Check(error.ptr())) {
      throw pyb::type_error("offload: set_exception() takes an exception instance");
    }
    Outcome outcome;
    outcome.error = own(error);
    return promise_.set_value(std::move(outcome));
  }

 private:
  Promise<Outcome> promise_;
};

// ---------------------------------------------------------------------------------------------
// Pool: a ThreadPool whose workers run Python jobs.

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

class PyPool {
 public:
  // With `interpreter_bootstrap`, every worker owns an own-GIL subinterpreter set up by that
  // source (interpreters.h); calls reach it through run_in_interpreter.
  PyPool(std::size_t workers, std::string name, pyb::object initializer, pyb::tuple initargs,
         std::optional<std::string> interpreter_bootstrap, std::string separator,
         bool on_demand, std::uint64_t thread_token, bool log_initializer_errors)
      : workers_(workers == 0 ? ThreadPool::default_worker_count() : workers),
        name_(std::move(name)),
        separator_(std::move(separator)),
        on_demand_(on_demand),
        init_(std::make_shared<Initializer>()) {
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

  // Collected: as ThreadPoolExecutor, it does not wait. The workers finish the queue and exit;
  // retire() keeps their pool for the exit hook to join (join_retired_pools).
  ~PyPool() {
    if (pool_) retire(std::move(pool_));
  }

  void run_on_loop(std::shared_ptr<Notifier> notifier, PyObject* loop_future, Call call) {
    check(submit_loop_call(pool(), std::move(notifier), Ref::borrow(loop_future), std::move(call)));
  }

  void map_on_loop(const std::shared_ptr<Notifier>& notifier, const pyb::object& loop_future,
                   const pyb::object& fn, const pyb::sequence& items, const pyb::object& context) {
    require_callable(fn);
    // A tuple of the map's own: nothing can change the items while workers read them.
    Ref copy = Ref::steal(PySequence_Tuple(items.ptr()));
    if (!copy) throw pyb::error_already_set();
    check(submit_map(pool(), notifier, own(loop_future), own(fn), std::move(copy), own_or_null(context)));
  }

  PyFuture submit(const pyb::object& fn, const pyb::tuple& args, const pyb::object& kwargs,
                  const pyb::object& context) {
    Future<Outcome> future;
    check(submit_future_call(pool(), make_call(fn, args, kwargs, context), &future));
    return PyFuture(std::move(future));
  }

  void submit_concurrent(const pyb::object& cf_future, const pyb::object& fn,
                         const pyb::tuple& args, const pyb::object& kwargs,
                         const pyb::object& context) {
    check(submit_concurrent_call(pool(), own(cf_future), make_call(fn, args, kwargs, context),
                                 init_->broken));
  }

  // Stops intake; `cancel_pending` drops queued calls (their futures are cancelled); `wait`
  // joins the workers with the GIL released. On the main thread Ctrl-C interrupts the wait
  // (KeyboardInterrupt; the pool stays shut down, its workers finish on their own).
  void shutdown(bool wait, bool cancel_pending) {
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

  pyb::dict stats() const {
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

  // Lets the workers finish the queue, joins them (ending their interpreters) and forgets
  // them; the next call starts new ones. CPython cannot fork while a subinterpreter exists
  // (the child aborts, gh-101437), so InterpreterPools do this before a fork. A pool that
  // another thread restarted while the GIL was released is stopped again: when this returns
  // (GIL held) no worker of this pool exists.
  void stop_workers() {
    while (pool_) {
      std::shared_ptr<ThreadPool> old = std::move(pool_);
      old->shutdown(ThreadPool::Pending::kRun);
      join(*old);
    }
  }

  // In a forked child the workers are gone and the core's locks may be held by threads that no
  // longer exist: abandon the old pool without touching it and start afresh on next use.
  void after_fork_in_child() {
    if (pool_) new std::shared_ptr<ThreadPool>(std::move(pool_));  // leaked on purpose
  }

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

  ThreadPool& pool() {
    if (shut_down_) throw std::runtime_error("offload: cannot submit to a pool that was shut down");
    // Past the atexit hooks no worker may take the GIL again: a call submitted now (from a
    // __del__ run by finalization, say) could never run, and its caller would wait forever.
    if (is_finalizing()) {
      throw std::runtime_error("offload: cannot submit while the interpreter is shutting down");
    }
    if (!pool_) start();
    return *pool_;
  }

  void start() {
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


// ---------------------------------------------------------------------------------------------
// The hot path of offload.run / Pool.run, as a raw vectorcall function: no pybind11 dispatch,
// no Python frame. pool.run(fn, *args, **kwargs) -> the loop's future.

struct Runner {
  PyPool* pool;
  PyObject* owner;  // the _core.Pool object, kept alive by the runner
  PyObject* name;   // what a LazyCall of it is called ("offload.Pool.run"), a str
};

constexpr const char* kRunnerCapsule = "offload._core.Runner";

// Submits fn(*args, **kwargs) (kwargs may be null), in a copy of the current context, to run
// on the pool; its outcome completes `call`, a Call of `loop`. False with an error set.
bool submit_run(Runner* runner, PyObject* loop, PyObject* call, PyObject* fn, Ref args,
                Ref kwargs) {
  Ref context = Ref::steal(PyContext_CopyCurrent());
  if (!context) return false;
  try {
    std::shared_ptr<Notifier> notifier = notifier_for(loop);
    runner->pool->run_on_loop(notifier, call,
                              Call{Ref::borrow(fn), std::move(args), std::move(kwargs),
                                   std::move(context)});
  } catch (pyb::error_already_set& e) {
    e.restore();
    return false;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return false;
  }
  return true;
}

// The start of a LazyCall of run: start_run(call, runner, fn, args, kwargs), on the loop of
// its first step. The context is copied now, in the awaiting task, as asyncio.to_thread does.
PyObject* start_run(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError, "start_run() takes 5 arguments");
    return nullptr;
  }
  auto* runner = static_cast<Runner*>(PyCapsule_GetPointer(args[1], kRunnerCapsule));
  if (runner == nullptr) return nullptr;
  PyObject* loop = running_loop();
  if (loop == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "no running event loop");
    return nullptr;
  }
  if (!submit_run(runner, loop, args[0], args[2], Ref::borrow(args[3]),
                  args[4] == Py_None ? Ref() : Ref::borrow(args[4]))) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef start_run_def = {
    "start_run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(start_run)),
    METH_FASTCALL, nullptr};
PyObject* start_run_fn = nullptr;  // start_run as a function object

// pool.run(fn, *args, **kwargs): a Call of the running loop with the call submitted, or with no
// running loop a LazyCall that submits it when first awaited.
PyObject* fast_run(PyObject* capsule, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  auto* runner = static_cast<Runner*>(PyCapsule_GetPointer(capsule, kRunnerCapsule));
  if (runner == nullptr) return nullptr;
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "run() missing 1 required positional argument: 'fn'");
    return nullptr;
  }
  PyObject* fn = args[0];
  if (!PyCallable_Check(fn)) {
    PyErr_Format(PyExc_TypeError, "offload: expected a callable, got %.200s object",
                 Py_TYPE(fn)->tp_name);
    return nullptr;
  }
  Ref call_args = Ref::steal(PyTuple_New(nargs - 1));
  if (!call_args) return nullptr;
  for (Py_ssize_t i = 1; i < nargs; ++i) {
    PyTuple_SET_ITEM(call_args.get(), i - 1, new_ref(args[i]));
  }
  Ref kwargs;
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
    kwargs = Ref::steal(PyDict_New());
    if (!kwargs) return nullptr;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i) {
      if (PyDict_SetItem(kwargs.get(), PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
        return nullptr;
      }
    }
  }
  PyObject* loop = running_loop();
  if (loop == nullptr) {
    Ref start_args = Ref::steal(PyTuple_Pack(4, capsule, fn, call_args.get(),
                                             kwargs ? kwargs.get() : Py_None));
    if (!start_args) return nullptr;
    return new_lazy_call(runner->name, start_run_fn, start_args.get());
  }
  Ref call = Ref::steal(new_call(loop));
  if (!call) return nullptr;
  if (!submit_run(runner, loop, call.get(), fn, std::move(call_args), std::move(kwargs))) {
    return nullptr;
  }
  return call.release();
}

PyMethodDef fast_run_def = {
    "run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(fast_run)),
    METH_FASTCALL | METH_KEYWORDS,
    "run(fn, /, *args, **kwargs)\n--\n\nRuns ``fn(*args, **kwargs)`` on the pool; returns its "
    ":class:`offload.Call`."};

// offload.run: fast_run on the default pool, which Python creates on first use.
PyObject* default_pool_factory = nullptr;  // offload._pool.default_pool
PyObject* default_runner = nullptr;        // its runner's capsule, once created

PyObject* run_on_default(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  if (default_runner == nullptr) {
    Ref pool = Ref::steal(PyObject_CallNoArgs(default_pool_factory));
    if (!pool) return nullptr;
    Ref run = Ref::steal(PyObject_GetAttrString(pool.get(), "_run"));
    if (!run) return nullptr;
    if (default_runner == nullptr) default_runner = new_ref(PyCFunction_GET_SELF(run.get()));
  }
  return fast_run(default_runner, args, nargsf, kwnames);
}

PyMethodDef run_on_default_def = {
    "run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(run_on_default)),
    METH_FASTCALL | METH_KEYWORDS,
    "run(fn, /, *args, **kwargs)\n--\n\n"
    "Runs ``fn(*args, **kwargs)`` on the default pool: a drop-in for :func:`asyncio.to_thread`,\n"
    "much cheaper per call. Returns a :class:`Call`: in a running loop, the call is submitted\n"
    "at once and the result is that loop's future of it, which is also a coroutine\n"
    "(``create_task``, ``TaskGroup`` and ``gather`` all take it); with no running loop, a\n"
    "coroutine that starts the call when first awaited, as ``to_thread``'s does.\n\n"
    ">>> import hashlib\n"
    ">>> async def main() -> str:\n"
    "...     digest = await offload.run(hashlib.sha256, b\"abc\")\n"
    "...     return digest.hexdigest()[:16]\n"
    ">>> asyncio.run(main())\n"
    "'ba7816bf8f01cfea'\n\n"
    "The call runs in a copy of the caller's :mod:`contextvars` context; its exception is\n"
    "raised with its traceback; cancelling the awaiting task cancels the call if it has not\n"
    "started (a running call can poll :func:`offload.cancelled`).\n\n"
    "Raises:\n"
    "    RuntimeError: the default pool was shut down.\n"
    "    TypeError: ``fn`` is not callable.\n"};

PyObject* make_runner(PyPool& pool, const pyb::object& owner, const std::string& name) {
  PyObject* name_obj = PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size()));
  if (name_obj == nullptr) throw pyb::error_already_set();
  auto* runner = new Runner{&pool, new_ref(owner.ptr()), name_obj};
  PyObject* capsule = PyCapsule_New(runner, kRunnerCapsule, [](PyObject* c) {
    auto* r = static_cast<Runner*>(PyCapsule_GetPointer(c, kRunnerCapsule));
    Py_DECREF(r->owner);
    Py_DECREF(r->name);
    delete r;
  });
  if (capsule == nullptr) {
    Py_DECREF(runner->owner);
    Py_DECREF(runner->name);
    delete runner;
    throw pyb::error_already_set();
  }
  PyObject* fn = PyCFunction_NewEx(&fast_run_def, capsule, nullptr);
  Py_DECREF(capsule);
  if (fn == nullptr) throw pyb::error_already_set();
  return fn;
}

PyObject* run_in_interpreter(PyObject*, PyObject* payload) {
  return run_in_worker_interpreter(payload);
}

PyMethodDef run_in_interpreter_def = {
    "run_in_interpreter", run_in_interpreter, METH_O,
    "run_in_interpreter(payload, /)\n--\n\n"
    "Runs a pickled call in this InterpreterPool worker's own interpreter; returns the pickled\n"
    "reply. Only meaningful on an InterpreterPool worker thread."};

}  // namespace
}  // namespace offload::py

PYBIND11_MODULE(_core, m) {
  using namespace offload;
  using namespace offload::py;
  // Debian builds abseil without NDEBUG, which leaves its mutex deadlock detector on: a
  // lock-order graph updated on every lock. Our lock order is checked by the C++ tests (which
  // keep the detector) and by clang's thread-safety analysis; in the extension it only costs.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  init_names();
  {
    pyb::module_ cf = pyb::module_::import("concurrent.futures");
    imports.timeout_error = pyb::object(cf.attr("TimeoutError")).release().ptr();
    imports.cancelled_error = pyb::object(cf.attr("CancelledError")).release().ptr();
    set_main_thread(
        pyb::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>());
  }

  m.doc() = "offload's native core: thread pool, futures, channels and loop notifiers (internal API).";

  pyb::class_<Notifier, std::shared_ptr<Notifier>>(m, "Notifier")
      .def(pyb::init([]() { return std::make_shared<Notifier>(); }))
      .def(pyb::init([](pyb::object wake) {
             require_callable(wake);
             auto fn = std::make_shared<Ref>(own(wake));
             return std::make_shared<Notifier>([fn] {
               GilScope gil;
               if (!gil.acquired()) return;
               Ref r = Ref::steal(PyObject_CallNoArgs(fn->get()));
               if (!r) PyErr_Clear();  // the loop is closed: nothing left to wake
             });
           }),
           pyb::arg("wake"))
      .def_property_readonly("fd", &Notifier::fd)
      .def("drain",
           [](Notifier& n) {
             collect_garbage();
             return n.drain();
           })
      .def("close", &Notifier::close)
      .def("call_soon",
           [](Notifier& n, pyb::object fn) {
             // fn() on the loop's thread, in the notifier's next batch. False when the notifier
             // is closed (fn is dropped, unrun).
             require_callable(fn);
             return n.add([fn = own(fn)] {
                       Ref r = Ref::steal(PyObject_CallNoArgs(fn.get()));
                       if (!r) log_raised("offload: a callback on the event loop failed");
                     })
                 .ok();
           },
           pyb::arg("fn"))
      .def_property_readonly("closed", &Notifier::closed)
      .def("stats", [](const Notifier& n) {
        Notifier::Stats s = n.stats();
        pyb::dict d;
        d["added"] = s.added;
        d["wakes"] = s.wakes;
        d["drains"] = s.drains;
        d["ran"] = s.ran;
        return d;
      });

  pyb::class_<PyFuture>(m, "Future", collectable<PyFuture>())
      .def("result", &PyFuture::result, pyb::arg("timeout") = pyb::none())
      .def("exception", &PyFuture::exception, pyb::arg("timeout") = pyb::none())
      .def("done", &PyFuture::done)
      .def("cancelled", &PyFuture::cancelled)
      .def("running", &PyFuture::running)
      .def("cancel", &PyFuture::cancel)
      .def("add_done_callback", &PyFuture::add_done_callback, pyb::arg("fn"), pyb::arg("arg"))
      .def("deliver_to", &PyFuture::deliver_to, pyb::arg("notifier"), pyb::arg("loop_future"))
      .def_property_readonly("state", &PyFuture::state);

  pyb::class_<PyPromise>(m, "Promise")
      .def(pyb::init<>())
      .def_property_readonly("future", &PyPromise::future)
      .def("set_result", &PyPromise::set_result, pyb::arg("value"))
      .def("set_exception", &PyPromise::set_exception, pyb::arg("error"));

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

  m.def("cancelled", [] {
    const Job* job = current_job();
    return job != nullptr && job->cancel_requested();
  });
  m.def("current_call", []() -> pyb::object {
    const Job* job = current_job();
    PyObject* future = job != nullptr ? job->loop_future() : nullptr;
    return future != nullptr ? pyb::reinterpret_borrow<pyb::object>(future) : pyb::none();
  });
  m.def("default_worker_count", &ThreadPool::default_worker_count);
  m.def("join_retired_pools", &join_retired_pools);
  m.attr("interpreters_supported") = kInterpretersSupported;
  m.add_object("run_in_interpreter",
               pyb::reinterpret_steal<pyb::object>(PyCFunction_NewEx(&run_in_interpreter_def, nullptr, m.ptr())));
  m.def("set_thread_hooks", [](pyb::object started, pyb::object stopping) {
    set_thread_hooks(started.ptr(), stopping.ptr());
  });
  m.def("set_default_pool_factory", [](pyb::object factory) {
    Py_XDECREF(default_pool_factory);
    default_pool_factory = new_ref(factory.ptr());
  });
  m.add_object("run_on_default",
               pyb::reinterpret_steal<pyb::object>(PyCFunction_NewEx(&run_on_default_def, nullptr, m.ptr())));
  if (!add_call_types(m.ptr())) throw pyb::error_already_set();
  start_run_fn = PyCFunction_NewEx(&start_run_def, nullptr, nullptr);
  if (start_run_fn == nullptr) throw pyb::error_already_set();
  m.def("reset_after_fork", [] {
    // In a forked child: the parent's retired pools and queued garbage belong to threads that
    // do not exist here (leaked, never touched), and the thread that forked is the main thread
    // now, for Ctrl-C in blocking waits (it may not have been the parent's main thread).
    new std::vector<std::shared_ptr<ThreadPool>>(std::move(retired_pools()));
    retired_pools().clear();
    reset_garbage_after_fork();
    set_main_thread(PyThread_get_thread_ident());
  });
  bind_loop_registry(m);
  bind_channels(m);
}
