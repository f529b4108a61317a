// The core channel operations as the binding uses them, shared by the channel, the loop waiter
// and select: channels of py::Ref items (the core only moves them, so no reference count
// changes under a channel lock; references are taken and dropped with the GIL held), thread
// waits with the GIL released, and the errors every channel operation raises.

#ifndef OFFLOAD_BINDING_CHANNEL_OPS_H_
#define OFFLOAD_BINDING_CHANNEL_OPS_H_

#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "offload/channel.h"
#include "python_runtime.h"

namespace offload::py {

using CoreChannel = Channel<Ref>;
using CoreOp = internal::ChannelOp<Ref>;
using CoreSelect = internal::SelectEngine<Ref>;

// Sets ChannelClosed("offload: the channel is closed"), the one error for every operation on a
// closed channel (Python's select gets it through _core.channel_closed_error).
void set_channel_closed();
[[noreturn]] void raise_channel_closed();  // the same, thrown as pybind11::error_already_set
// TimeoutError("offload: <what> timed out"), thrown.
[[noreturn]] void raise_timeout(const char* what);

// The operation's item, handed to Python (None when there is none).
pybind11::object take_item(CoreOp& op);

// An item received by an operation whose receiver gave up goes back to its channel.
void give_back_received(CoreOp& op);

// The core operations for (channel, item) pairs: the package's channel_recv marker as the item
// makes a receive, anything else a send of that item.
std::vector<CoreOp> core_ops(const std::vector<std::shared_ptr<CoreChannel>>& channels,
                             std::vector<Ref>& items);

// Blocks this thread until one of `ops` happens: its index, or Waiter::kAborted at the
// deadline (`timeout`: None or seconds, checked). GIL held on entry and exit, released while
// waiting. A signal handler that raises (Ctrl-C) withdraws the operations; if one happened at
// that instant, a received item goes back.
int wait_blocking(CoreOp* ops, int n, const pybind11::handle& timeout);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_CHANNEL_OPS_H_
