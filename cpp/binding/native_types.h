// What the raw C-API parts of the binding share. Call and LazyCall (call.cc) and
// ChannelAwaitable (channel_awaitable.cc) speak the coroutine protocol without being
// generators; every raw type is made from a PyType_Spec that Python code may not instantiate;
// raw functions that call pybind11 code turn its exceptions into Python errors (guarded).
//
// Each type writes one step function, `Step step(PyObject* self, PyObject* arg, PyObject** out)`
// (a value to yield, a result to return, or an error set), and takes its tp_iternext, send()
// and am_send from the adapters below, so that the three entry points a Task, `await` and
// `yield from` use cannot disagree. All of it runs with the GIL held.

#ifndef OFFLOAD_BINDING_NATIVE_TYPES_H_
#define OFFLOAD_BINDING_NATIVE_TYPES_H_

#include <Python.h>
#include <pybind11/pybind11.h>

#include <exception>

namespace offload::py {

enum class Step { kYield, kReturn, kError };
using StepFn = Step (*)(PyObject* self, PyObject* arg, PyObject** out);

// Sets StopIteration(value) as the error: how send() returns a coroutine's result.
void set_stop_iteration(PyObject* value);

// A step as the iterator protocol sees it: the yielded value, or null with StopIteration(result)
// or the error set.
inline PyObject* step_as_iterator(Step step, PyObject* out) {
  switch (step) {
    case Step::kYield:
      return out;
    case Step::kReturn:
      set_stop_iteration(out);
      Py_DECREF(out);
      return nullptr;
    default:
      return nullptr;
  }
}

template <StepFn F>
PyObject* coroutine_iternext(PyObject* self) {
  PyObject* out = nullptr;
  const Step step = F(self, Py_None, &out);
  return step_as_iterator(step, out);
}

template <StepFn F>
PyObject* coroutine_send(PyObject* self, PyObject* arg) {
  PyObject* out = nullptr;
  const Step step = F(self, arg, &out);
  return step_as_iterator(step, out);
}

#if PY_VERSION_HEX >= 0x030A0000
template <StepFn F>
PySendResult coroutine_am_send(PyObject* self, PyObject* arg, PyObject** out) {
  switch (F(self, arg, out)) {
    case Step::kYield:
      return PYGEN_NEXT;
    case Step::kReturn:
      return PYGEN_RETURN;
    default:
      return PYGEN_ERROR;
  }
}
#endif

// The error a coroutine gives when stepped after it finished; returns Step::kError.
Step refuse_reuse();
// False, with the error coroutines give, when the first step sends a value other than None.
bool check_first_send(PyObject* arg);

// throw(exc) / throw(type[, value[, traceback]]) takes 1 to 3 arguments; TypeError otherwise.
bool check_throw_args(Py_ssize_t nargs);
// Sets the exception that throw(*args) raises, as a generator does when it is not running.
void raise_thrown(PyObject* const* args, Py_ssize_t nargs);

// From tp_finalize of an object that was never awaited: warns "coroutine '<name>' was never
// awaited" as CPython does for its coroutines, keeping any error already set.
void warn_never_awaited(PyObject* self, PyObject* name);

// Marks a native coroutine (any struct with a `bool running`) as running for one step, and
// refuses a re-entrant step (a signal handler, a __del__ or another thread stepping it
// meanwhile) with the error coroutines give, which could otherwise free what the step uses.
template <class T>
class RunningScope {
 public:
  explicit RunningScope(T* self) : self_(self), entered_(!self->running) {
    if (entered_) {
      self->running = true;
    } else {
      PyErr_SetString(PyExc_ValueError, "coroutine already executing");
    }
  }
  ~RunningScope() {
    if (entered_) self_->running = false;
  }
  RunningScope(const RunningScope&) = delete;
  RunningScope& operator=(const RunningScope&) = delete;
  bool entered() const { return entered_; }

 private:
  T* self_;
  const bool entered_;
};

// Py_TPFLAGS_DISALLOW_INSTANTIATION where it exists (3.10+).
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
constexpr unsigned long kNoInstances = Py_TPFLAGS_DISALLOW_INSTANTIATION;
#else
constexpr unsigned long kNoInstances = 0;
#endif

// A type from `spec` (and `bases`, may be null) that only offload's C++ makes instances of:
// its tp_new is cleared, which Python 3.9 has no flag for. Null with an error set.
PyTypeObject* new_native_type(PyType_Spec* spec, PyObject* bases = nullptr);

// Runs `fn` (which returns a new reference, or null with an error set, and may throw pybind11
// or C++ exceptions) as the body of a raw CPython function: what it throws becomes the Python
// error (a C++ exception other than pybind11's, RuntimeError).
template <class Fn>
PyObject* guarded(Fn fn) {
  try {
    return fn();
  } catch (pybind11::error_already_set& e) {
    e.restore();
  } catch (const pybind11::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_NATIVE_TYPES_H_
