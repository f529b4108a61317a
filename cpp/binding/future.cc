#include "future.h"

#include <pybind11/stl.h>

#include <utility>

#include "absl/time/time.h"
#include "checks.h"
#include "collectable.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

// concurrent.futures' TimeoutError and CancelledError, imported by bind_future; never
// released (they live as long as the process).
PyObject* timeout_error = nullptr;
PyObject* cancelled_error = nullptr;

}  // namespace

bool PyFuture::wait(std::optional<double> timeout) const {
  if (future_.is_ready()) return true;
  const WaitEnd end = wait_without_gil([&](absl::Time t) { return future_.wait_until(t); },
                                       deadline_after(timeout ? &*timeout : nullptr));
  if (end == WaitEnd::kSignal) throw pyb::error_already_set();
  return end == WaitEnd::kReady;
}

pyb::object PyFuture::result(std::optional<double> timeout) const {
  const Outcome* o = settled_outcome(timeout);
  if (o->error) {
    restore_error(o->error.get());
    throw pyb::error_already_set();
  }
  return pyb::reinterpret_borrow<pyb::object>(o->value.get());
}

pyb::object PyFuture::exception(std::optional<double> timeout) const {
  const Outcome* o = settled_outcome(timeout);
  return pyb::reinterpret_borrow<pyb::object>(o->error ? o->error.get() : Py_None);
}

void PyFuture::add_done_callback(const pyb::object& fn, const pyb::object& arg) const {
  require_callable(fn);
  future_.on_settled(inline_executor(), [fn = Ref::borrow(fn.ptr()), arg = Ref::borrow(arg.ptr())] {
    GilScope gil;
    if (!gil.acquired()) return;
    Ref r = Ref::steal(PyObject_CallOneArg(fn.get(), arg.get()));
    if (!r) {
      Ref error = fetch_error();
      log_error("offload: exception calling a done callback", error.get());
    }
  });
}

void PyFuture::deliver_to(const std::shared_ptr<Notifier>& notifier,
                          const pyb::object& loop_future) const {
  future_.on_settled(*notifier, [future = future_, loop_future = Ref::borrow(loop_future.ptr()),
                                 keep_alive = notifier] {
    PyFuture settled(future);
    complete_loop_future(loop_future.get(), settled.outcome());
  });
}

std::string PyFuture::state() const {
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

int PyFuture::traverse(visitproc visit, void* arg) const {
  const Outcome* o = future_.is_only_handle() ? outcome() : nullptr;
  if (o != nullptr) {
    Py_VISIT(o->value.get());
    Py_VISIT(o->error.get());
  }
  return 0;
}

const Outcome* PyFuture::settled_outcome(std::optional<double> timeout) const {
  if (!wait(timeout)) {
    PyErr_SetNone(timeout_error);
    throw pyb::error_already_set();
  }
  const Outcome* o = outcome();
  if (o == nullptr) {
    PyErr_SetNone(cancelled_error);
    throw pyb::error_already_set();
  }
  return o;
}

bool PyPromise::set_result(const pyb::object& value) {
  Outcome outcome;
  outcome.value = Ref::borrow(value.ptr());
  return promise_.set_value(std::move(outcome));
}

bool PyPromise::set_exception(const pyb::object& error) {
  if (!PyExceptionInstance_Check(error.ptr())) {
    throw pyb::type_error("offload: set_exception() takes an exception instance");
  }
  Outcome outcome;
  outcome.error = Ref::borrow(error.ptr());
  return promise_.set_value(std::move(outcome));
}

void bind_future(pyb::module_& m) {
  pyb::module_ cf = pyb::module_::import("concurrent.futures");
  timeout_error = pyb::object(cf.attr("TimeoutError")).release().ptr();
  cancelled_error = pyb::object(cf.attr("CancelledError")).release().ptr();

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
}

}  // namespace offload::py
