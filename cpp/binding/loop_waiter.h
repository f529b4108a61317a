// LoopWaiter: a coroutine's wait on one or several channel operations (Channel.recv/send's
// slow path, select). The core's Waiter, whose wake-up is a task on its loop's Notifier (or,
// when the claimer already runs on that loop's thread, the completion itself). The asyncio
// future it completes carries no item: the item stays in the waiter until the resumed coroutine
// takes it synchronously (offload._channel), so there is no point at which a cancellation could
// drop it. A cancelled receiver gives a handed item back to its channel.
//
// A pybind11 class: Python calls it once per wait that blocks, never per item.

#ifndef OFFLOAD_BINDING_LOOP_WAITER_H_
#define OFFLOAD_BINDING_LOOP_WAITER_H_

#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "channel_ops.h"
#include "offload/notifier.h"

namespace offload::py {

// Starts a coroutine's wait for one of the operations (channels[i], items[i]) (core_ops): the
// LoopWaiter, queued on the channels, or already done when one could happen at once. `future`
// is the asyncio future the coroutine awaits, completed on its loop through `notifier`; `pins`
// are the distinct Python channels whose `waiting` sets pin the future while it waits. GIL
// held, on the loop's thread.
pybind11::object start_loop_waiter(std::vector<std::shared_ptr<CoreChannel>> channels,
                                   std::vector<Ref> items, std::shared_ptr<Notifier> notifier,
                                   const pybind11::object& future, const pybind11::tuple& pins);

// Adds LoopWaiter (withdraw, give_back, happened, take) to the module.
void bind_loop_waiter(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_LOOP_WAITER_H_
