// offload.Future's native half: the core Future<Outcome> as Python sees it (result, exception,
// done callbacks, delivery to an event loop), and the Promise that offload.from_thread settles
// from Python. pybind11 classes (their calls are not on a per-item hot path).

#ifndef OFFLOAD_BINDING_FUTURE_H_
#define OFFLOAD_BINDING_FUTURE_H_

#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>

#include "offload/future.h"
#include "offload/notifier.h"
#include "python_runtime.h"

namespace offload::py {

class PyFuture {
 public:
  explicit PyFuture(Future<Outcome> future) : future_(std::move(future)) {}

  // Waits with the GIL released (wait_without_gil: Ctrl-C works on the main thread).
  bool wait(std::optional<double> timeout) const;

  // The outcome of a settled future; null when it was cancelled.
  const Outcome* outcome() const { return future_.has_value() ? &future_.get() : nullptr; }

  pybind11::object result(std::optional<double> timeout) const;
  pybind11::object exception(std::optional<double> timeout) const;

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
  void add_done_callback(const pybind11::object& fn, const pybind11::object& arg) const;

  // Completes `loop_future` on its loop (through `notifier`) once this future settles.
  void deliver_to(const std::shared_ptr<Notifier>& notifier,
                  const pybind11::object& loop_future) const;

  std::string state() const;

  // Python's gc (collectable.h) sees the outcome, so that a result or an exception (its
  // traceback's frames) referencing this future is collected with it, as with
  // concurrent.futures. Only once this is the state's only handle: until then the job (which
  // settles it and runs the done callbacks it holds) or a delivery to a loop still shares it,
  // so neither the outcome nor a pending done callback is this object's alone. The worker
  // drops its promise before it can hand the GIL over, so a future seen settled is normally
  // traversable at once.
  int traverse(visitproc visit, void* arg) const;

  // Garbage: drops this handle, and with it the outcome if it was the only one (with the GIL,
  // outside the state's lock). What is left reads as cancelled: a Promise destroyed unsettled
  // cancels its future.
  void clear() { future_ = Promise<Outcome>().get_future(); }

 private:
  // Waits (raising TimeoutError) and returns the outcome; raises CancelledError.
  const Outcome* settled_outcome(std::optional<double> timeout) const;

  Future<Outcome> future_;
};

// A promise settled from Python (offload.from_thread): its future is a PyFuture that threads
// wait on with the GIL released. Destroyed unsettled (a loop that closed with its task still
// queued), it settles the future as cancelled.
class PyPromise {
 public:
  PyFuture future() const { return PyFuture(promise_.get_future()); }
  bool set_result(const pybind11::object& value);
  bool set_exception(const pybind11::object& error);

 private:
  Promise<Outcome> promise_;
};

// Adds Future and Promise to the module.
void bind_future(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_FUTURE_H_
