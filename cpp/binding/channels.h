// The Python face of offload::Channel: channels of Python objects, their thread-blocking and
// loop-waiting operations, and select.
//
// Items are py::Ref: the core only moves them, so no reference count changes under a channel
// lock; references are taken and dropped with the GIL held.
//
// A coroutine waits through a LoopWaiter (channels.cc): the core's Waiter whose wake-up is a
// task on its loop's Notifier (or, when the claimer already runs on that loop's thread, the
// completion itself). The asyncio future it completes carries no item: the item stays in the
// waiter until the resumed coroutine takes it synchronously, so there is no point at which a
// cancellation could drop it. A cancelled receiver gives a handed item back to its channel.

#ifndef OFFLOAD_BINDING_CHANNELS_H_
#define OFFLOAD_BINDING_CHANNELS_H_

#include <pybind11/pybind11.h>

namespace offload::py {

// Adds Channel, LoopWaiter and the select functions to the module.
void bind_channels(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_CHANNELS_H_
