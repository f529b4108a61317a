// offload._core.Notifier: the core's per-loop completion queue (offload/notifier.h) as Python
// sees it. The loop registry (loop_registry.h) makes and owns one per event loop; Python uses
// them for offload.from_thread's callbacks (call_soon) and in tests. A pybind11 class.

#ifndef OFFLOAD_BINDING_NOTIFIER_H_
#define OFFLOAD_BINDING_NOTIFIER_H_

#include <pybind11/pybind11.h>

namespace offload::py {

// Adds Notifier to the module.
void bind_notifier(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_NOTIFIER_H_
