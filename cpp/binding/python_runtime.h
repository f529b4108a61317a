// Python runtime rules for native threads: owned references that may be dropped anywhere,
// the per-worker GIL holder, and calling a Python function with its context.
//
// GIL discipline (see docs/design.md):
//   * The only lock order is GIL -> core lock. Core locks are held for short, Python-free work;
//     the core destroys tasks and runs continuations outside its locks, so a destructor that
//     needs the GIL never runs under one.
//   * A worker creates one Python thread state the first time it runs Python and keeps it until
//     it exits. It takes the GIL lazily for the first Python job of a batch and releases it in
//     the pool's after_batch hook, so a burst of jobs costs one acquisition per batch; a job
//     longer than kGilSlice hands the GIL over between jobs (yield_if_due).
//   * Nothing touches Python once the interpreter is finalizing: offload stops its workers from
//     an atexit hook before that, and anything later is leaked rather than risk a crash.

#ifndef OFFLOAD_BINDING_PYTHON_RUNTIME_H_
#define OFFLOAD_BINDING_PYTHON_RUNTIME_H_

#include <Python.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "offload/thread_pool.h"

namespace offload::py {

// Py_NewRef for Python 3.9.
inline PyObject* new_ref(PyObject* obj) {
  Py_INCREF(obj);
  return obj;
}

// True once CPython has started finalizing; safe to call without the GIL.
bool is_finalizing();

// True when this thread holds the main interpreter's GIL. Use it, never PyGILState_Check():
// once a subinterpreter exists CPython disables that check (it then always answers yes), and
// a worker may hold a subinterpreter's GIL instead of the main one.
bool holds_gil();

// Decrefs `obj` now if this thread holds the GIL; otherwise queues it for the next thread that
// calls collect_garbage() with the GIL held. Never blocks on the GIL.
void drop_reference(PyObject* obj);
// Drops the references queued by drop_reference(); requires the GIL.
void collect_garbage();
// Resets the garbage queue in a forked child (its lock may have been held by a lost thread).
void reset_garbage_after_fork();

// An owned reference that is safe to destroy on any thread, with or without the GIL.
class Ref {
 public:
  Ref() = default;
  static Ref steal(PyObject* obj) { return Ref(obj); }
  static Ref borrow(PyObject* obj) {
    Py_XINCREF(obj);
    return Ref(obj);
  }
  Ref(Ref&& other) noexcept : obj_(std::exchange(other.obj_, nullptr)) {}
  Ref& operator=(Ref&& other) noexcept {
    if (this != &other) {
      reset();
      obj_ = std::exchange(other.obj_, nullptr);
    }
    return *this;
  }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  ~Ref() { reset(); }

  PyObject* get() const { return obj_; }
  // A new reference for the caller; requires the GIL.
  PyObject* new_reference() const {
    Py_XINCREF(obj_);
    return obj_;
  }
  // Gives up ownership to the caller.
  PyObject* release() { return std::exchange(obj_, nullptr); }
  explicit operator bool() const { return obj_ != nullptr; }
  void reset() {
    if (obj_ != nullptr) drop_reference(std::exchange(obj_, nullptr));
  }

 private:
  explicit Ref(PyObject* obj) : obj_(obj) {}
  PyObject* obj_ = nullptr;
};

// A weak reference to `obj` where its type supports one, else a strong reference. GIL held.
Ref weak_or_strong(PyObject* obj);
// What a weak_or_strong() reference points to: a new reference, or null if it is gone.
Ref referent(const Ref& ref);

// The GIL as held by a pool worker thread. All members are about the calling thread.
class WorkerGil {
 public:
  // Takes the GIL unless this worker holds it already. False when the interpreter is
  // finalizing: the caller must then not touch Python.
  static bool ensure();
  // Releases the GIL if this worker holds it (after each batch, and before any wait).
  static void release();
  // Hands the GIL over if this worker has held it for longer than a slice.
  static void yield_if_due();
  // Deletes this worker's thread state; called once as the worker exits.
  static void stop();
  // Who this worker is for the threading module, set before its first ensure(): its name
  // (the pool's thread name, uncut), its index in its pool, and its pool's token for
  // offload._threads (0: none). With a name, the worker is announced to offload._threads when
  // it creates its thread state (the package's thread_started hook, package.h), and withdrawn
  // in stop() (thread_stopping, before the thread state is deleted: before Python 3.13 that
  // releases the lock the worker's threading.Thread is joined on, see offload/_threads.py).
  static void set_identity(std::string name, std::size_t index, std::uint64_t token);
};


// Logs `error`, an exception instance, on logging.getLogger("offload") as `message`, with its
// traceback; if logging fails too, that failure is reported as unraisable. GIL held.
void log_error(const char* message, PyObject* error);
// The same for the raised exception, which it clears. GIL held.
void log_raised(const char* message);

// Takes the GIL on any thread (PyGILState) for one scope, unless the interpreter is
// finalizing; check acquired() before touching Python.
class GilScope {
 public:
  GilScope();
  ~GilScope();
  GilScope(const GilScope&) = delete;
  GilScope& operator=(const GilScope&) = delete;
  bool acquired() const { return acquired_; }

 private:
  bool acquired_;
  PyGILState_STATE state_{};
};

// The result of a Python call: exactly one of value and error is set.
struct Outcome {
  Ref value;
  Ref error;  // the exception instance, its __traceback__ set
};

// Takes the raised exception out of the error indicator as an instance (GIL held).
Ref fetch_error();
// Raises `error` (an exception instance) into the error indicator (GIL held).
void restore_error(PyObject* error);

// Calls fn(*args, **kwargs) inside `context` (may be null) and captures the outcome. GIL held.
Outcome call(PyObject* fn, PyObject* args, PyObject* kwargs, PyObject* context);
// Calls fn(arg) inside `context` (may be null). GIL held.
Outcome call_one(PyObject* fn, PyObject* arg, PyObject* context);

// Completes an asyncio future from its loop's thread: set_result / set_exception, or cancel()
// when `outcome` is null. A future already done (cancelled by its awaiter) is left alone.
// GIL held. Errors are reported as unraisable, never propagated into the drain.
void complete_loop_future(PyObject* future, const Outcome* outcome);

// fut.done() for an asyncio or concurrent future; a failure counts as done. GIL held.
bool future_done(PyObject* future);

// The running event loop of this thread (borrowed; the running loop outlives the caller's
// frame), or null when none runs. Never raises. GIL held.
PyObject* running_loop();

// The main thread's ident (threading.main_thread().ident), recorded at module import.
void set_main_thread(unsigned long ident);
bool on_main_thread();

enum class WaitEnd { kReady, kDeadline, kSignal };

// Calls `wait_until(t)` — which blocks until ready (returning true) or until `t` (false) — with
// the GIL released, until ready or `deadline`. On the main thread it wakes every 100 ms to run
// signal handlers, so Ctrl-C interrupts the wait as it does in concurrent.futures: a handler
// that raises ends the wait with kSignal and the exception set. GIL held on entry and exit.
template <class WaitUntil>
WaitEnd wait_without_gil(WaitUntil wait_until, absl::Time deadline) {
  // On a pool worker, the wait may be for calls queued behind it: its pool may start another
  // worker meanwhile (ThreadPool::BlockingScope).
  ThreadPool::BlockingScope blocked;
  const bool main_thread = on_main_thread();
  for (;;) {
    const absl::Time until =
        main_thread ? std::min(deadline, absl::Now() + absl::Milliseconds(100)) : deadline;
    bool ready;
    Py_BEGIN_ALLOW_THREADS
    ready = wait_until(until);
    Py_END_ALLOW_THREADS
    if (ready) return WaitEnd::kReady;
    if (PyErr_CheckSignals() < 0) return WaitEnd::kSignal;
    if (absl::Now() >= deadline) return WaitEnd::kDeadline;
  }
}

// Calls fn() with the GIL released (GIL held on entry and exit). Unlike an RAII guard it takes
// the GIL back outside any destructor: a daemon thread that CPython ends with pthread_exit
// when it asks for the GIL during finalization then unwinds through here, where an RAII
// guard's noexcept destructor would call std::terminate and abort the process at exit.
template <class Fn>
void without_gil(Fn fn) {
  PyThreadState* tstate = PyEval_SaveThread();
  try {
    fn();
  } catch (...) {
    PyEval_RestoreThread(tstate);
    throw;
  }
  PyEval_RestoreThread(tstate);
}

// A timeout in seconds (None: forever) as a deadline; a negative timeout is already past.
inline absl::Time deadline_after(const double* timeout_seconds) {
  if (timeout_seconds == nullptr) return absl::InfiniteFuture();
  return absl::Now() + absl::Seconds(std::max(0.0, *timeout_seconds));
}

// Interned attribute names, created at module import.
struct Names {
  PyObject* done;
  PyObject* cancel;
  PyObject* set_result;
  PyObject* set_exception;
  PyObject* set_running_or_notify_cancel;
};
const Names& names();

// Interns the names and imports what the helpers above use (asyncio._get_running_loop); once,
// at module import. False with an error set.
bool init_runtime();

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_PYTHON_RUNTIME_H_
