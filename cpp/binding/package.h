// The whole boundary from the Python package into the native module: the objects the package
// defines that C++ raises, returns or calls. offload/__init__.py hands them over in one call,
// _core.connect(...), once every module of the package is imported; nothing else puts Python
// objects into native globals. The entry points that need them (making a Pool or a Channel,
// offload.run) check that the call was made and raise RuntimeError if not, so an import-order
// mistake fails loudly at the first use instead of crashing on a null object.
//
// The other direction, Python calling C++, is the module's functions and types: module.cc
// registers them, one binding file per component.

#ifndef OFFLOAD_BINDING_PACKAGE_H_
#define OFFLOAD_BINDING_PACKAGE_H_

#include <Python.h>
#include <pybind11/pybind11.h>

namespace offload::py {

// Strong references, never released (they live as long as the process). All null until
// connect(); all set by it.
struct PackageObjects {
  PyObject* channel_closed;   // offload.ChannelClosed
  PyObject* would_block;      // offload.WouldBlock
  PyObject* channel_empty;    // the marker a channel's poll returns when nothing is buffered
  PyObject* channel_recv;     // the item that marks a receive among select's operations
  // The slow paths of Channel.recv / send / __anext__, coroutine functions of the core
  // channel: recv_wait(core), send_wait(core, item), anext_wait(core).
  PyObject* recv_wait;
  PyObject* send_wait;
  PyObject* anext_wait;
  PyObject* default_pool;     // offload.default_pool, which offload.run calls on first use
  // offload._threads' hooks, called by every named worker (python_runtime.h, WorkerGil):
  // thread_started(name, index, token) once it has a thread state, thread_stopping() before
  // it deletes it.
  PyObject* thread_started;
  PyObject* thread_stopping;
};

namespace package_state {
extern PackageObjects objects;
}  // namespace package_state

// The package's objects. Only valid once connected(): callers are reached through an entry
// point that checked (or run on a worker of a pool, which exists only after the check).
inline const PackageObjects& package() { return package_state::objects; }

bool connected();
// False with RuntimeError set when the package has not connected yet.
bool check_connected();
// Throws pybind11::error_already_set (RuntimeError) when the package has not connected yet.
void require_connected();

// Adds connect(**objects) to the module.
void bind_package(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_PACKAGE_H_
