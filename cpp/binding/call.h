// Call and LazyCall: what offload.run, Pool.run and Pool.map return.
//
// asyncio asks two different things of an awaitable, depending on where it is handed:
// create_task, TaskGroup.create_task, asyncio.run and run_coroutine_threadsafe accept only a
// coroutine (asyncio.iscoroutine), while gather, ensure_future, shield, wait_for and
// as_completed take a future as it is (asyncio.isfuture), with no Task around it. A call's
// result is both:
//
//   * Call: made when a loop is running. An asyncio.Future subclass bound to that loop (so
//     gather and friends use it directly, as cheaply as loop.create_future()), which also
//     speaks the coroutine protocol (send/throw/close), so a Task can drive it. The work is
//     submitted at once (eager), its outcome arrives through the loop's notifier.
//   * LazyCall: made when no loop is running (asyncio.run(offload.run(f)), a coroutine handed
//     to run_coroutine_threadsafe from a plain thread). A coroutine that does nothing until it
//     is first stepped on a running loop; then it makes a Call on that loop, starts the work
//     and delegates to it, as asyncio.to_thread's coroutine would. Never awaited, it warns.
//
// Being a coroutine has one price, by asyncio's design: asyncio.wait() refuses coroutines
// (TypeError on Python 3.11+, a DeprecationWarning before), so it refuses a Call as it refuses
// asyncio.to_thread(...); asyncio.create_task(call) is the way to hand one to it.
//
// Raw C API: the types subclass asyncio's C Future (pybind11 cannot derive from a foreign
// native type), and one Call is allocated per offloaded call, on the path that
// benchmarks/test_bench_calls.py::test_paired_gather_10000_vs_floor holds to the asyncio floor
// (a Call costs what loop.create_future() does; a Python subclass of asyncio.Future would add
// a __dict__ and a Python-level __init__ per call).

#ifndef OFFLOAD_BINDING_CALL_H_
#define OFFLOAD_BINDING_CALL_H_

#include <Python.h>

namespace offload::py {

// Creates the Call and LazyCall types and adds them to `module`; false with an error set.
bool add_call_types(PyObject* module);

// A new Call bound to `loop`, or null with an error set. GIL held.
PyObject* new_call(PyObject* loop);

// A new LazyCall: on its first step, on the loop running then, it makes a Call and calls
// start(call, *args) (`args` a tuple) to submit the work, then awaits the Call. `name` (a str)
// names it in the never-awaited warning. Null with an error set. GIL held.
PyObject* new_lazy_call(PyObject* name, PyObject* start, PyObject* args);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_CALL_H_
