// offload._core: the native module, as the package imports it. This file only registers the
// components, one binding file each, mirroring the core's names:
//
//   package.h            the boundary from Python: _core.connect() hands over the package's objects
//   checks.h             argument checks shared with the package (check_callable, check_timeout)
//   notifier.h           Notifier, a loop's completion queue
//   loop_registry.h      the loop -> notifier map, and what happens when a loop goes away
//   future.h             Future (offload.Future's native half), Promise
//   pool.h               Pool: a ThreadPool running Python jobs (jobs.h)
//   jobs.h               cancelled(), current_call(): the job running on this thread
//   call.h               Call and LazyCall, what run/map return              (raw C API)
//   fast_call.h          the pools' run functions and offload.run            (raw C API)
//   interpreters.h       InterpreterPool workers' own-GIL subinterpreters     (raw C API)
//   channel.h            Channel, over the core's Channel<Ref> (channel_ops.h)
//   loop_waiter.h        LoopWaiter, a coroutine's wait on channel operations
//   channel_awaitable.h  ChannelAwaitable, what recv/send/__anext__ return    (raw C API)
//   channel_fast.h       the functions each Channel binds per item            (raw C API)
//   select.h             select over several channels
//
// The GIL rules every file follows are in python_runtime.h; what the raw C-API types share is
// in native_types.h, and each raw file says why it bypasses pybind11.

#include <pybind11/pybind11.h>

#include "absl/synchronization/mutex.h"
#include "call.h"
#include "channel.h"
#include "channel_awaitable.h"
#include "channel_fast.h"
#include "checks.h"
#include "fast_call.h"
#include "future.h"
#include "interpreters.h"
#include "jobs.h"
#include "loop_registry.h"
#include "loop_waiter.h"
#include "notifier.h"
#include "package.h"
#include "pool.h"
#include "python_runtime.h"
#include "select.h"

namespace pyb = pybind11;

PYBIND11_MODULE(_core, m) {
  using namespace offload::py;
  // Debian builds abseil without NDEBUG, which leaves its mutex deadlock detector on: a
  // lock-order graph updated on every lock. Our lock order is checked by the C++ tests (which
  // keep the detector) and by clang's thread-safety analysis; in the extension it only costs.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (!init_runtime()) throw pyb::error_already_set();
  set_main_thread(
      pyb::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>());

  m.doc() = "offload's native core: thread pool, futures, channels and loop notifiers (internal API).";

  bind_package(m);
  bind_checks(m);
  bind_notifier(m);
  bind_loop_registry(m);
  bind_future(m);
  bind_pool(m);
  bind_jobs(m);
  if (!add_call_types(m.ptr())) throw pyb::error_already_set();
  bind_fast_call(m);
  bind_interpreters(m);
  bind_channel(m);
  bind_loop_waiter(m);
  bind_channel_awaitable(m);
  bind_channel_fast(m);
  bind_select(m);

  m.def("reset_after_fork", [] {
    // In a forked child: the parent's retired pools and queued garbage belong to threads that
    // do not exist here (leaked, never touched), and the thread that forked is the main thread
    // now, for Ctrl-C in blocking waits (it may not have been the parent's main thread).
    abandon_retired_pools_after_fork();
    reset_garbage_after_fork();
    reset_interpreter_gate_after_fork();
    set_main_thread(PyThread_get_thread_ident());
  });
}
