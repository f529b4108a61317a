// Argument checks done in one layer, here, and exported to the Python package
// (_core.check_callable, _core.check_timeout, used by offload._checks): the native fast paths
// and the Python entry points give the same error for the same bad value.

#ifndef OFFLOAD_BINDING_CHECKS_H_
#define OFFLOAD_BINDING_CHECKS_H_

#include <Python.h>
#include <pybind11/pybind11.h>

#include <optional>

namespace offload::py {

// False with TypeError("offload: expected a callable, got <type> object") unless `fn` is
// callable. GIL held.
bool check_callable(PyObject* fn);
// The same, throwing pybind11::error_already_set.
void require_callable(const pybind11::handle& fn);

// A timeout in seconds: None (no limit) or a number (anything with __float__ or __index__ but
// a bool), not NaN, within a float. TypeError or ValueError naming the problem otherwise
// (thrown as pybind11 exceptions). GIL held.
std::optional<double> checked_timeout(const pybind11::handle& timeout);

// Adds check_callable and check_timeout to the module.
void bind_checks(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_CHECKS_H_
