// The per-item hot path of offload.Channel: raw fast-call functions bound to one channel,
// which the Python Channel sets as its instance attributes (recv, send, __anext__, send_nowait,
// recv_nowait, send_blocking, recv_blocking): no pybind11 dispatch, no Python frame. The
// blocking ones try the operation before any deadline or waiter set-up; recv/send/__anext__
// return a ChannelAwaitable (channel_awaitable.h).
//
// Raw C API: a perf profile of a thread feeding a coroutine through an unbounded channel put
// pybind11's call machinery at ~19% of the samples (send_blocking and poll); binding raw
// functions, trying before setting up, and the native awaitable took that scenario from
// 1.7-1.9x to past its 3x goal against the best peer
// (benchmarks/test_bench_channels.py::test_chan_paired; docs/benchmarks.md, the channel notes).

#ifndef OFFLOAD_BINDING_CHANNEL_FAST_H_
#define OFFLOAD_BINDING_CHANNEL_FAST_H_

#include <pybind11/pybind11.h>

namespace offload::py {

class PyChannel;

// {name: function} for the Python Channel to bind as its instance attributes. `owner` is the
// _core.Channel object of `channel`, kept alive by the functions.
pybind11::dict bind_fast_path(PyChannel* channel, const pybind11::object& owner);

// Makes the type the bound functions hold their channel in.
void bind_channel_fast(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_CHANNEL_FAST_H_
