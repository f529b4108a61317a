#include "python_runtime.h"

#include <time.h>

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "package.h"

namespace offload::py {
namespace {

// How long a worker keeps the GIL across jobs before it hands it over (nanoseconds). CPython's
// own switch interval is 5 ms; a shorter slice keeps the event loop responsive.
constexpr std::int64_t kGilSlice = 1'000'000;
constexpr int kYieldCheckEvery = 8;

std::int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct Garbage {
  absl::Mutex mu;
  std::vector<PyObject*> objects ABSL_GUARDED_BY(mu);
};

Garbage* garbage = new Garbage();  // never destroyed: used until the process exits

struct WorkerState {
  std::string name;                 // empty: not announced to the threading module
  std::size_t index = 0;            // in its pool
  std::uint64_t token = 0;          // its pool's token for offload._threads (0: none)
  PyThreadState* tstate = nullptr;  // created on the first ensure(), kept until stop()
  PyGILState_STATE gilstate{};
  bool held = false;
  std::int64_t held_since = 0;
  int jobs_since_check = 0;
};
thread_local WorkerState worker;

Names* interned = nullptr;
PyObject* get_running_loop = nullptr;  // asyncio._get_running_loop: None, not an error
unsigned long main_thread_ident = 0;

// Calls a thread hook with `args` (a tuple, or null for none), logging what it raises: a
// worker must never stop over one.
void call_thread_hook(PyObject* hook, PyObject* args) {
  if (hook == nullptr) return;
  PyObject* r = args == nullptr ? PyObject_CallNoArgs(hook) : PyObject_Call(hook, args, nullptr);
  if (r == nullptr) {
    log_raised("offload: a worker thread could not update the threading module");
  } else {
    Py_DECREF(r);
  }
}

}  // namespace

bool is_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

bool holds_gil() {
#if PY_VERSION_HEX >= 0x030C0000
  // The current thread state is per thread since 3.12 (null while the GIL is released).
#if PY_VERSION_HEX >= 0x030D0000
  PyThreadState* tstate = PyThreadState_GetUnchecked();
#else
  PyThreadState* tstate = _PyThreadState_UncheckedGet();
#endif
  return tstate != nullptr && PyThreadState_GetInterpreter(tstate) == PyInterpreterState_Main();
#else
  return PyGILState_Check() != 0;  // no own-GIL subinterpreters before 3.12
#endif
}

void drop_reference(PyObject* obj) {
  if (obj == nullptr) return;
  if (holds_gil()) {
    Py_DECREF(obj);
    return;
  }
  if (is_finalizing()) return;  // leaked on purpose: Python is going away
  absl::MutexLock l(&garbage->mu);
  garbage->objects.push_back(obj);
}

void collect_garbage() {
  std::vector<PyObject*> objects;
  {
    absl::MutexLock l(&garbage->mu);
    if (garbage->objects.empty()) return;
    objects.swap(garbage->objects);
  }
  for (PyObject* obj : objects) Py_DECREF(obj);
}

void reset_garbage_after_fork() { garbage = new Garbage(); }

Ref weak_or_strong(PyObject* obj) {
  PyObject* weak = PyWeakref_NewRef(obj, nullptr);
  if (weak != nullptr) return Ref::steal(weak);
  PyErr_Clear();  // a type without weak references
  return Ref::borrow(obj);
}

Ref referent(const Ref& ref) {
  if (!ref || !PyWeakref_CheckRef(ref.get())) return Ref::borrow(ref.get());
#if PY_VERSION_HEX >= 0x030D0000
  PyObject* obj = nullptr;
  if (PyWeakref_GetRef(ref.get(), &obj) < 0) PyErr_Clear();
  return Ref::steal(obj);
#else
  PyObject* obj = PyWeakref_GetObject(ref.get());
  return obj == Py_None ? Ref() : Ref::borrow(obj);
#endif
}

bool WorkerGil::ensure() {
  if (worker.held) return true;
  if (is_finalizing()) return false;
  if (worker.tstate == nullptr) {
    worker.gilstate = PyGILState_Ensure();
    worker.tstate = PyThreadState_Get();
    if (!worker.name.empty()) {
      Ref name = Ref::steal(
          PyUnicode_DecodeUTF8(worker.name.data(), static_cast<Py_ssize_t>(worker.name.size()),
                               "replace"));
      Ref index = name ? Ref::steal(PyLong_FromSize_t(worker.index)) : Ref();
      Ref token = index ? Ref::steal(PyLong_FromUnsignedLongLong(worker.token)) : Ref();
      Ref args = token ? Ref::steal(PyTuple_Pack(3, name.get(), index.get(), token.get())) : Ref();
      if (args) {
        call_thread_hook(package().thread_started, args.get());
      } else {
        PyErr_Clear();
      }
    }
  } else {
    PyEval_RestoreThread(worker.tstate);
  }
  worker.held = true;
  worker.held_since = monotonic_ns();
  collect_garbage();
  return true;
}

void WorkerGil::release() {
  if (!worker.held) return;
  worker.held = false;
  PyEval_SaveThread();
}

void WorkerGil::yield_if_due() {
  // Reading the clock after every short job costs more than the job's bookkeeping: look at it
  // every kYieldCheckEvery jobs (a slice may then overrun by that many short jobs).
  if (!worker.held || ++worker.jobs_since_check < kYieldCheckEvery) return;
  worker.jobs_since_check = 0;
  if (monotonic_ns() - worker.held_since < kGilSlice) return;
  // If a thread has been waiting for the GIL (the event loop, say), CPython hands it over here.
  PyEval_SaveThread();
  PyEval_RestoreThread(worker.tstate);
  worker.held_since = monotonic_ns();
}

void WorkerGil::stop() {
  if (worker.tstate == nullptr) return;
  if (!worker.held) {
    if (is_finalizing()) return;  // leak the thread state rather than touch a dying runtime
    PyEval_RestoreThread(worker.tstate);
  }
  if (!worker.name.empty() && !is_finalizing()) call_thread_hook(package().thread_stopping, nullptr);
  worker.held = false;
  worker.tstate = nullptr;
  PyGILState_Release(worker.gilstate);  // deletes the thread state and releases the GIL
}

void WorkerGil::set_identity(std::string name, std::size_t index, std::uint64_t token) {
  worker.name = std::move(name);
  worker.index = index;
  worker.token = token;
}

void log_error(const char* message, PyObject* error) {
  // logging.getLogger("offload").error("%s", message, exc_info=error)
  Ref logging = Ref::steal(PyImport_ImportModule("logging"));
  Ref logger = logging ? Ref::steal(PyObject_CallMethod(logging.get(), "getLogger", "s", "offload"))
                       : Ref();
  Ref method = logger ? Ref::steal(PyObject_GetAttrString(logger.get(), "error")) : Ref();
  Ref args = method ? Ref::steal(Py_BuildValue("(ss)", "%s", message)) : Ref();
  Ref kwargs = args ? Ref::steal(Py_BuildValue("{sO}", "exc_info", error)) : Ref();
  Ref r = kwargs ? Ref::steal(PyObject_Call(method.get(), args.get(), kwargs.get())) : Ref();
  if (!r) PyErr_WriteUnraisable(error);  // logging itself failed: say so, naming the error
}

void log_raised(const char* message) {
  Ref error = fetch_error();
  if (error) log_error(message, error.get());
}

GilScope::GilScope() : acquired_(!is_finalizing()) {
  if (acquired_) state_ = PyGILState_Ensure();
}

GilScope::~GilScope() {
  if (acquired_) PyGILState_Release(state_);
}

Ref fetch_error() {
#if PY_VERSION_HEX >= 0x030C0000
  return Ref::steal(PyErr_GetRaisedException());
#else
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback != nullptr && value != nullptr) PyException_SetTraceback(value, traceback);
  Py_XDECREF(type);
  Py_XDECREF(traceback);
  return Ref::steal(value);
#endif
}

void restore_error(PyObject* error) {
#if PY_VERSION_HEX >= 0x030C0000
  Py_INCREF(error);
  PyErr_SetRaisedException(error);
#else
  PyErr_Restore(new_ref(reinterpret_cast<PyObject*>(Py_TYPE(error))), new_ref(error),
                PyException_GetTraceback(error));
#endif
}

namespace {

// Runs `invoke` (which returns a new reference or null with an error set) inside `context`.
template <class Invoke>
Outcome call_in_context(PyObject* context, Invoke invoke) {
  Outcome outcome;
  if (context != nullptr && PyContext_Enter(context) < 0) {
    outcome.error = fetch_error();
    return outcome;
  }
  Ref result = Ref::steal(invoke());
  if (!result) outcome.error = fetch_error();
  if (context != nullptr && PyContext_Exit(context) < 0) {
    Ref exit_error = fetch_error();
    if (!outcome.error) outcome.error = std::move(exit_error);
  }
  if (!outcome.error) outcome.value = std::move(result);
  return outcome;
}

}  // namespace

Outcome call(PyObject* fn, PyObject* args, PyObject* kwargs, PyObject* context) {
  return call_in_context(context, [&] { return PyObject_Call(fn, args, kwargs); });
}

Outcome call_one(PyObject* fn, PyObject* arg, PyObject* context) {
  return call_in_context(context, [&] { return PyObject_CallOneArg(fn, arg); });
}

namespace {

// asyncio futures refuse StopIteration (it would end the awaiting coroutine's generator);
// wrap it the way asyncio does for its own tasks.
Ref loop_safe_error(PyObject* error) {
  if (!PyErr_GivenExceptionMatches(error, PyExc_StopIteration)) return Ref::borrow(error);
  PyObject* wrapped = PyObject_CallFunction(
      PyExc_RuntimeError, "s", "offload: the function raised StopIteration, which cannot be "
                               "delivered to an asyncio future");
  if (wrapped == nullptr) return Ref::borrow(error);
  PyException_SetCause(wrapped, new_ref(error));
  return Ref::steal(wrapped);
}

}  // namespace

namespace {

// The methods of a future's type, looked up once per type: calling the type's function with
// the future as first argument skips the per-call attribute lookup. A handful of types is
// ever seen (asyncio's C future, its Python twin, a subclass or two); past kTypes the calls
// fall back to ordinary method calls. Guarded by the GIL.
struct FutureType {
  PyTypeObject* type = nullptr;  // a strong reference once set
  PyObject* done = nullptr;
  PyObject* set_result = nullptr;
  PyObject* set_exception = nullptr;
  PyObject* cancel = nullptr;
};
constexpr int kTypes = 4;
FutureType future_types[kTypes];

const FutureType* methods_of(PyObject* future) {
  PyTypeObject* type = Py_TYPE(future);
  for (FutureType& t : future_types) {
    if (t.type == type) return &t;
    if (t.type != nullptr) continue;
    auto* type_obj = reinterpret_cast<PyObject*>(type);
    Ref done = Ref::steal(PyObject_GetAttr(type_obj, names().done));
    Ref set_result = Ref::steal(PyObject_GetAttr(type_obj, names().set_result));
    Ref set_exception = Ref::steal(PyObject_GetAttr(type_obj, names().set_exception));
    Ref cancel = Ref::steal(PyObject_GetAttr(type_obj, names().cancel));
    if (!done || !set_result || !set_exception || !cancel) {
      PyErr_Clear();
      return nullptr;
    }
    t = FutureType{reinterpret_cast<PyTypeObject*>(new_ref(type_obj)), done.release(),
                   set_result.release(), set_exception.release(), cancel.release()};
    return &t;
  }
  return nullptr;
}

// future.<method>(*args), through the type's cached function when there is one.
PyObject* call_future_method(PyObject* future, PyObject* FutureType::*method, PyObject* name,
                             PyObject* arg) {
  if (const FutureType* t = methods_of(future)) {
    PyObject* args[2] = {future, arg};
    return PyObject_Vectorcall(t->*method, args, arg == nullptr ? 1 : 2, nullptr);
  }
  return arg == nullptr ? PyObject_CallMethodNoArgs(future, name)
                        : PyObject_CallMethodOneArg(future, name, arg);
}

}  // namespace

void complete_loop_future(PyObject* future, const Outcome* outcome) {
  if (future_done(future)) return;
  PyObject* r;
  if (outcome == nullptr) {
    r = call_future_method(future, &FutureType::cancel, names().cancel, nullptr);
  } else if (outcome->error) {
    Ref error = loop_safe_error(outcome->error.get());
    r = call_future_method(future, &FutureType::set_exception, names().set_exception, error.get());
  } else {
    r = call_future_method(future, &FutureType::set_result, names().set_result,
                           outcome->value.get());
  }
  if (r == nullptr) {
    log_raised("offload: an event loop future refused its outcome");
  } else {
    Py_DECREF(r);
  }
}

bool future_done(PyObject* future) {
  PyObject* r = call_future_method(future, &FutureType::done, names().done, nullptr);
  if (r == nullptr) {
    log_raised("offload: an event loop future failed in done()");
    return true;
  }
  const bool done = r == Py_True;
  Py_DECREF(r);
  return done;
}

void set_main_thread(unsigned long ident) { main_thread_ident = ident; }
bool on_main_thread() { return PyThread_get_thread_ident() == main_thread_ident; }

const Names& names() { return *interned; }

PyObject* running_loop() {
  PyObject* loop = PyObject_CallNoArgs(get_running_loop);
  if (loop == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  Py_DECREF(loop);  // borrowed: a running loop outlives the frames that run on it
  return loop == Py_None ? nullptr : loop;
}

bool init_runtime() {
  if (interned != nullptr) return true;
  interned = new Names{
      PyUnicode_InternFromString("done"),
      PyUnicode_InternFromString("cancel"),
      PyUnicode_InternFromString("set_result"),
      PyUnicode_InternFromString("set_exception"),
      PyUnicode_InternFromString("set_running_or_notify_cancel"),
  };
  Ref asyncio = Ref::steal(PyImport_ImportModule("asyncio"));
  if (!asyncio) return false;
  get_running_loop = PyObject_GetAttrString(asyncio.get(), "_get_running_loop");
  return get_running_loop != nullptr;
}

}  // namespace offload::py
