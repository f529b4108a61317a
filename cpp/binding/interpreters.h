// Worker interpreters: each worker thread of an InterpreterPool owns one subinterpreter with
// its own GIL (PEP 684, Python 3.12+), created when the worker starts and ended when it stops.
//
// A worker thread then holds two thread states: its main-interpreter one (WorkerGil) and its
// subinterpreter's. A call hops between them:
//
//   main GIL held: the job reads the pickled call (a main-interpreter bytes object)
//   -> release the main GIL, take the subinterpreter's GIL
//   -> copy the payload into a subinterpreter bytes object, run it, copy the reply out
//   -> release the subinterpreter's GIL, take the main GIL back, return the reply as bytes
//
// No object ever crosses interpreters: only bytes are copied, and while the subinterpreter
// runs, the main GIL is free for the event loop and the other workers. Objects of one
// interpreter are never referenced from the other (no Ref is created in a subinterpreter).
//
// Raw C API: subinterpreters, their thread states and GIL hand-offs have no pybind11
// counterpart (and pybind11's GIL helpers assume the main interpreter). run_in_interpreter is
// a plain METH_O function, called once per InterpreterPool call.

#ifndef OFFLOAD_BINDING_INTERPRETERS_H_
#define OFFLOAD_BINDING_INTERPRETERS_H_

#include <Python.h>
#include <pybind11/pybind11.h>

#include <string>

namespace offload::py {

// True when this build can create own-GIL subinterpreters (built against Python 3.12+).
constexpr bool kInterpretersSupported = PY_VERSION_HEX >= 0x030C0000;

// Creates this worker thread's subinterpreter and runs `bootstrap` (Python source that must
// define a callable `run(payload: bytes) -> bytes`) in it. The main GIL is held, by this
// thread's main thread state, on entry and on return. On failure the error is kept and every
// call on this worker retries the start, raising RuntimeError with the cause until it works.
void start_worker_interpreter(const std::string& bootstrap);

// Ends this worker thread's subinterpreter, if it has one. No GIL is held on entry or return.
// During interpreter finalization it leaks the subinterpreter instead.
void stop_worker_interpreter();

// Runs `run(payload)` in this worker thread's subinterpreter and returns the reply as a new
// main-interpreter bytes object, or null with an exception set. `payload` must be bytes. The
// main GIL is held on entry and on return, and released while the subinterpreter runs.
PyObject* run_in_worker_interpreter(PyObject* payload);

// Calls fn() (a new reference, or null with an exception set) while no worker interpreter runs
// Python: it waits, without the GIL and letting Ctrl-C through, for those that do to finish
// their call or their start, and holds new ones back until fn returns. Main GIL held.
//
// Why: sys._current_frames() and sys._current_exceptions() walk the thread states of every
// interpreter and make Python objects for the frames they find with the calling interpreter's
// allocator (CPython 3.12-3.13 at least). A worker interpreter later frees them with its own
// allocator, which does not know them: the process crashes ("free(): invalid pointer").
// Dask's profiler calls sys._current_frames() every 10 ms in every process that runs a Dask
// scheduler or worker. offload._cpu wraps both functions with this while InterpreterPools
// exist. A thread that a call started inside its subinterpreter and left running is not
// covered (docs/design.md, "Thread snapshots").
PyObject* call_with_interpreters_paused(PyObject* fn);

// In a forked child: the parent's worker interpreters are not there; forget their state.
void reset_interpreter_gate_after_fork();

// Adds run_in_interpreter, with_interpreters_paused and interpreters_supported to the module.
void bind_interpreters(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_INTERPRETERS_H_
