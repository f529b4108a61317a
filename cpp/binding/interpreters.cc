#include "interpreters.h"

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "python_runtime.h"

namespace offload::py {

#if PY_VERSION_HEX >= 0x030C0000

namespace {

// The gate between worker interpreters running Python and a pause (interpreters.h). mu_ is a
// leaf lock: it only guards the counts, for a few instructions; no Python runs and no GIL is
// taken under it. A worker or a pause holds the gate as state (running_, paused_), not as the
// mutex, and waits for the gate (enter, pause_by) only with no GIL held.
class InterpreterGate {
 public:
  // A worker interpreter is about to run Python: waits while a pause is under way or asked
  // for (pauses go first, so a busy pool cannot starve them). No GIL held.
  void enter() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(this, &InterpreterGate::open));
    ++running_;
  }
  void leave() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    --running_;
  }

  // A pause asks first (closing the gate to new entries), then waits in slices until no
  // worker interpreter runs Python (pause_by); `ask` is undone by pause_by's success or by
  // give_up. No GIL held.
  void ask() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    ++asking_;
  }
  bool pause_by(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    if (!mu_.AwaitWithDeadline(absl::Condition(this, &InterpreterGate::idle), deadline)) return false;
    --asking_;
    paused_ = true;
    return true;
  }
  void give_up() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    --asking_;
  }
  void resume() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    paused_ = false;
  }

 private:
  bool open() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !paused_ && asking_ == 0; }
  bool idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0 && !paused_; }

  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // worker interpreters running Python
  int asking_ ABSL_GUARDED_BY(mu_) = 0;   // pauses waiting for them to stop
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
};

// Leaked: worker threads may still pass it while the process exits. After fork() the child
// gets a fresh one (reset_interpreter_gate_after_fork): the parent's workers are not there.
InterpreterGate* gate = new InterpreterGate;

// Holds the gate while a worker interpreter runs Python. No GIL held on construction.
class InterpreterScope {
 public:
  InterpreterScope() { gate->enter(); }
  ~InterpreterScope() { gate->leave(); }
  InterpreterScope(const InterpreterScope&) = delete;
  InterpreterScope& operator=(const InterpreterScope&) = delete;
};

struct WorkerInterpreter {
  PyThreadState* tstate = nullptr;  // the subinterpreter's thread state on this thread
  PyObject* run = nullptr;          // the bootstrap's run(); a subinterpreter object
  std::string bootstrap;            // empty: this thread is not an InterpreterPool worker
  std::string error;                // why the last start failed
};
thread_local WorkerInterpreter sub;

PyThreadState* current_thread_state() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked();
#else
  return _PyThreadState_UncheckedGet();
#endif
}

// The raised exception of the current interpreter as "Type: message"; clears it. GIL held.
std::string take_error_text() {
  PyObject* error = PyErr_GetRaisedException();
  if (error == nullptr) return "unknown error";
  std::string text = Py_TYPE(error)->tp_name;
  if (PyObject* message = PyObject_Str(error)) {
    const char* utf8 = PyUnicode_AsUTF8(message);
    if (utf8 != nullptr && *utf8 != '\0') text += std::string(": ") + utf8;
    Py_DECREF(message);
  }
  PyErr_Clear();
  Py_DECREF(error);
  return text;
}

// Runs the bootstrap in the new subinterpreter, whose GIL this thread holds; keeps run().
bool bootstrap_current(std::string* error) {
  PyObject* globals = PyDict_New();
  PyObject* result = nullptr;
  if (globals != nullptr && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0) {
    result = PyRun_String(sub.bootstrap.c_str(), Py_file_input, globals, globals);
  }
  PyObject* run = result != nullptr ? PyDict_GetItemString(globals, "run") : nullptr;
  bool ok = run != nullptr && PyCallable_Check(run);
  if (ok) {
    sub.run = new_ref(run);
  } else if (result == nullptr || globals == nullptr) {
    *error = take_error_text();
  } else {
    *error = "the bootstrap did not define run()";
  }
  Py_XDECREF(result);
  Py_XDECREF(globals);
  return ok;
}

// Creates and bootstraps this thread's subinterpreter. `main` is this thread's main thread
// state; the main GIL is held through it on entry and on return.
void try_start(PyThreadState* main) {
  // Creating the interpreter runs Python in it (site, the bootstrap): pass the gate first,
  // with the main GIL released (nobody waits on the gate holding a GIL).
  PyEval_SaveThread();
  InterpreterScope running;
  PyEval_RestoreThread(main);
  PyInterpreterConfig config = {};
  config.use_main_obmalloc = 0;
  config.allow_fork = 0;
  config.allow_exec = 0;
  config.allow_threads = 1;
  config.allow_daemon_threads = 0;
  config.check_multi_interp_extensions = 1;
  config.gil = PyInterpreterConfig_OWN_GIL;
  PyThreadState* tstate = nullptr;
  const PyStatus status = Py_NewInterpreterFromConfig(&tstate, &config);
  if (PyStatus_Exception(status) || tstate == nullptr) {
    sub.error = std::string("Py_NewInterpreterFromConfig failed") +
                (status.err_msg != nullptr ? std::string(": ") + status.err_msg : std::string());
    // The calling thread state is current again; take the main GIL back if it is not held.
    if (current_thread_state() == nullptr) PyEval_RestoreThread(main);
    return;
  }
  // Now the subinterpreter's thread state is current and its GIL held; the main GIL is free.
  std::string error;
  if (bootstrap_current(&error)) {
    sub.tstate = tstate;
    sub.error.clear();
    PyEval_SaveThread();
  } else {
    sub.error = "its bootstrap failed: " + error;
    Py_EndInterpreter(tstate);  // leaves no thread state current
  }
  PyEval_RestoreThread(main);
}

}  // namespace

void start_worker_interpreter(const std::string& bootstrap) {
  sub.bootstrap = bootstrap;
  try_start(PyThreadState_Get());
}

void stop_worker_interpreter() {
  PyThreadState* tstate = std::exchange(sub.tstate, nullptr);
  PyObject* run = std::exchange(sub.run, nullptr);
  if (tstate == nullptr || is_finalizing()) return;  // leaked rather than touch a dying runtime
  InterpreterScope running;  // ending it runs Python in it
  PyEval_RestoreThread(tstate);
  Py_DECREF(run);
  Py_EndInterpreter(tstate);
}

PyObject* run_in_worker_interpreter(PyObject* payload) {
  if (!PyBytes_Check(payload)) {
    PyErr_Format(PyExc_TypeError, "offload: a worker interpreter call must be bytes, got %.200s",
                 Py_TYPE(payload)->tp_name);
    return nullptr;
  }
  if (sub.tstate == nullptr) {
    if (sub.bootstrap.empty()) {
      PyErr_SetString(PyExc_RuntimeError,
                      "offload: worker interpreter calls run only on InterpreterPool workers");
      return nullptr;
    }
    try_start(PyThreadState_Get());
    if (sub.tstate == nullptr) {
      PyErr_Format(PyExc_RuntimeError, "offload: the worker interpreter could not be started: %s",
                   sub.error.c_str());
      return nullptr;
    }
  }
  // The payload is immutable and kept alive by the caller: the subinterpreter may read its
  // bytes while the main GIL is free.
  const char* data = PyBytes_AS_STRING(payload);
  const Py_ssize_t size = PyBytes_GET_SIZE(payload);
  std::string reply;
  std::string error;
  PyThreadState* main = PyEval_SaveThread();
  std::optional<InterpreterScope> running;
  running.emplace();
  PyEval_RestoreThread(sub.tstate);
  PyObject* arg = PyBytes_FromStringAndSize(data, size);
  PyObject* result = arg != nullptr ? PyObject_CallOneArg(sub.run, arg) : nullptr;
  Py_XDECREF(arg);
  if (result == nullptr) {
    error = take_error_text();
  } else if (!PyBytes_Check(result)) {
    error = std::string("run() returned ") + Py_TYPE(result)->tp_name + ", not bytes";
  } else {
    try {
      reply.assign(PyBytes_AS_STRING(result), static_cast<std::size_t>(PyBytes_GET_SIZE(result)));
    } catch (const std::exception&) {
      error = "out of memory copying the reply";
    }
  }
  Py_XDECREF(result);
  PyEval_SaveThread();
  running.reset();
  PyEval_RestoreThread(main);
  if (!error.empty()) {
    PyErr_Format(PyExc_RuntimeError, "offload: the worker interpreter failed: %s", error.c_str());
    return nullptr;
  }
  return PyBytes_FromStringAndSize(reply.data(), static_cast<Py_ssize_t>(reply.size()));
}

PyObject* call_with_interpreters_paused(PyObject* fn) {
  gate->ask();
  const WaitEnd end = wait_without_gil([](absl::Time t) { return gate->pause_by(t); },
                                       absl::InfiniteFuture());
  if (end != WaitEnd::kReady) {  // Ctrl-C (the deadline is infinite)
    gate->give_up();
    return nullptr;
  }
  PyObject* result = PyObject_CallNoArgs(fn);
  gate->resume();
  return result;
}

void reset_interpreter_gate_after_fork() { gate = new InterpreterGate; }  // the old one leaked

#else  // Python < 3.12: no own-GIL subinterpreters.

void start_worker_interpreter(const std::string&) {}
void stop_worker_interpreter() {}
PyObject* call_with_interpreters_paused(PyObject* fn) { return PyObject_CallNoArgs(fn); }
void reset_interpreter_gate_after_fork() {}

PyObject* run_in_worker_interpreter(PyObject*) {
  PyErr_SetString(PyExc_RuntimeError,
                  "offload: worker interpreters need Python 3.12 or newer; use offload.ProcessPool");
  return nullptr;
}

#endif

namespace {

PyObject* run_in_interpreter(PyObject*, PyObject* payload) {
  return run_in_worker_interpreter(payload);
}

PyMethodDef run_in_interpreter_def = {
    "run_in_interpreter", run_in_interpreter, METH_O,
    "run_in_interpreter(payload, /)\n--\n\n"
    "Runs a pickled call in this InterpreterPool worker's own interpreter; returns the pickled\n"
    "reply. Only meaningful on an InterpreterPool worker thread."};

PyObject* with_interpreters_paused(PyObject*, PyObject* fn) {
  return call_with_interpreters_paused(fn);
}

PyMethodDef with_interpreters_paused_def = {
    "with_interpreters_paused", with_interpreters_paused, METH_O,
    "with_interpreters_paused(fn, /)\n--\n\n"
    "Calls fn() while no InterpreterPool worker interpreter runs Python (waiting for those that\n"
    "do to finish their call); returns what it returns."};

}  // namespace

void bind_interpreters(pybind11::module_& m) {
  m.attr("interpreters_supported") = kInterpretersSupported;
  m.add_object("run_in_interpreter", pybind11::reinterpret_steal<pybind11::object>(
                                         PyCFunction_NewEx(&run_in_interpreter_def, nullptr, m.ptr())));
  m.add_object("with_interpreters_paused",
               pybind11::reinterpret_steal<pybind11::object>(
                   PyCFunction_NewEx(&with_interpreters_paused_def, nullptr, m.ptr())));
}

}  // namespace offload::py
