// The loop registry: one Notifier (completion queue) per event loop, owned here and only here.
//
// Workers never touch an event loop. They push finished work into the loop's notifier; the
// notifier wakes the loop once per burst (an eventfd the loop watches with add_reader) and the
// loop runs the whole batch on its own thread. A loop without add_reader gets one
// call_soon_threadsafe per burst instead.
//
// When a loop goes away, its entry is detached at once: the notifier is closed (what it still
// holds is released, never delivered: results, channel hand-offs, callbacks), and the things
// that watch the loop (coroutines waiting on channels, LoopBound) give up. "Goes away" is
// noticed three ways:
//   * close(): asyncio's and uvloop's close() drop the reader callback they were given, a
//     LoopReader of ours, whose deallocation detaches the entry;
//   * collected without close(): a weak reference's callback detaches it;
//   * otherwise (a loop type that keeps its readers, or no add_reader): the next attach sweeps
//     the loops found closed.
//
// Closed-loop policy (docs/design.md): a closed loop cancels no call (one submitted and never
// awaited still runs, as run_in_executor's would); results of a closed loop are released; a coroutine waiting on a channel takes
// nothing (its operations are withdrawn, an item handed to it goes on to the next receiver);
// callbacks from workers (offload.from_thread) fail with an error; nothing keeps the loop alive.
//
// Everything here is guarded by the GIL alone. No lock is held while Python runs (detaching
// runs destructors, which may call offload again: the map is never iterated across such calls).
//
// Raw C API for LoopReader: it must run code when the loop releases it (its deallocation),
// which a pybind11 class cannot hook without a Python-level __del__.

#ifndef OFFLOAD_BINDING_LOOP_REGISTRY_H_
#define OFFLOAD_BINDING_LOOP_REGISTRY_H_

#include <pybind11/pybind11.h>

#include <memory>

#include "offload/notifier.h"

namespace offload::py {

// Something tied to a loop that must give up when the loop goes away.
class LoopBound {
 public:
  virtual ~LoopBound() = default;
  // The loop closed or was collected. GIL held; may run Python.
  virtual void loop_gone() = 0;
};

// The notifier of `loop`, the calling thread's running loop, attached on first use. Throws
// pybind11::error_already_set (a closed loop: RuntimeError). GIL held.
std::shared_ptr<Notifier> notifier_for(PyObject* loop);

// The notifier of `loop` if it has one, else null. Attaches nothing (attaching touches the
// loop, which only its own thread may), so it may be called from any thread. GIL held.
std::shared_ptr<Notifier> registered_notifier(PyObject* loop);

// `bound` hears loop_gone() if `loop` (attached) goes away while `bound` lives. GIL held.
void watch(PyObject* loop, std::weak_ptr<LoopBound> bound);

// Adds notifier_for, registered_notifier, attached_loops and forget_loops_after_fork.
void bind_loop_registry(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_LOOP_REGISTRY_H_
