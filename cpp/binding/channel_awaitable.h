// ChannelAwaitable: what Channel.recv(), send() and __anext__ return. It behaves as the
// coroutine it stands for: it does nothing until it is first stepped (awaited, or run by a
// Task). Then it tries the operation at once and, when that works, returns its result without
// a Python frame, a future or a loop round trip. Otherwise it starts the slow path, the Python
// coroutine recv_wait / send_wait / anext_wait of offload._channel (the package's objects,
// package.h), and delegates every step, throw() and close() to it, so waiting, cancellation and
// close follow that coroutine's semantics exactly. offload._channel registers the type as a
// collections.abc.Coroutine, so asyncio.create_task() and wait_for() accept it.
//
// Raw C API: one is made per channel operation a coroutine awaits, and most complete on their
// first step. A Python coroutine per `await ch.recv()` (its frame, generator object and the
// gen-0 collections they trigger) was the largest cost of a channel item between a thread and a
// coroutine in a perf profile; the native awaitable, with the raw fast functions
// (channel_fast.h), took that scenario past its goal
// (benchmarks/test_bench_channels.py::test_chan_paired, "thread -> coroutine";
// docs/benchmarks.md, the channel notes).

#ifndef OFFLOAD_BINDING_CHANNEL_AWAITABLE_H_
#define OFFLOAD_BINDING_CHANNEL_AWAITABLE_H_

#include <Python.h>
#include <pybind11/pybind11.h>

namespace offload::py {

class PyChannel;

// A channel as the raw functions see it: the C++ object, and the _core.Channel object that
// owns it (a strong reference, held by whoever holds the Bound).
struct Bound {
  PyChannel* channel;
  PyObject* owner;
};

enum AwaitKind { kAwaitRecv, kAwaitSend, kAwaitNext };

// A new awaitable of `kind` on `bound`'s channel (`item`: the item to send, for kAwaitSend).
// Null with an error set. GIL held.
PyObject* new_channel_awaitable(const Bound& bound, AwaitKind kind, PyObject* item);

// Makes the ChannelAwaitable type and adds it to the module.
void bind_channel_awaitable(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_CHANNEL_AWAITABLE_H_
