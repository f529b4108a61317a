// The hot path of offload.run and Pool.run: one native vectorcall function per pool (its
// "runner"), pool.run(fn, *args, **kwargs) -> a Call of the running loop with the call
// submitted, or with no running loop a LazyCall that submits it when first awaited.
//
// Raw C API: pybind11's dispatch (argument conversion, overload resolution, its function
// record) and a Python-level method frame cost more than the rest of a call's submission.
// Measured when it was introduced: the per-call cost went from about 3 us to 1.5 us, and a
// gather of 10,000 calls from 0.66x to 0.9-1.2x the asyncio floor
// (benchmarks/test_bench_calls.py::test_paired_gather_10000_vs_floor, docs/benchmarks.md).

#ifndef OFFLOAD_BINDING_FAST_CALL_H_
#define OFFLOAD_BINDING_FAST_CALL_H_

#include <pybind11/pybind11.h>

#include <string>

namespace offload::py {

class PyPool;

// `pool`'s runner: a new reference to the function that Python binds as the pool's `run`.
// `owner` is the _core.Pool object (kept alive by the runner); `name` names its LazyCalls in
// the never-awaited warning ("offload.Pool.run"). Throws pybind11::error_already_set.
PyObject* make_runner(PyPool& pool, const pybind11::object& owner, const std::string& name);

// Adds run_on_default (offload.run: the default pool's runner, the pool created through the
// package's default_pool on first use).
void bind_fast_call(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_FAST_CALL_H_
