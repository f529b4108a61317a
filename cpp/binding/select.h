// offload.select's native half: one operation among several channels, from a coroutine
// (select_waiter: a LoopWaiter), a thread (select_blocking) or neither (select_nowait). An
// operation is (channel, item); the package's channel_recv marker as the item makes it a
// receive. pybind11 functions: one call per select, whatever it waits for.

#ifndef OFFLOAD_BINDING_SELECT_H_
#define OFFLOAD_BINDING_SELECT_H_

#include <pybind11/pybind11.h>

namespace offload::py {

// Adds select_waiter, select_blocking and select_nowait to the module.
void bind_select(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_SELECT_H_
