#include "checks.h"

#include <pybind11/stl.h>

#include <string>

namespace pyb = pybind11;

namespace offload::py {

bool check_callable(PyObject* fn) {
  if (PyCallable_Check(fn)) return true;
  PyErr_Format(PyExc_TypeError, "offload: expected a callable, got %.200s object",
               Py_TYPE(fn)->tp_name);
  return false;
}

void require_callable(const pyb::handle& fn) {
  if (!check_callable(fn.ptr())) throw pyb::error_already_set();
}

std::optional<double> checked_timeout(const pyb::handle& timeout) {
  if (timeout.is_none()) return std::nullopt;
  if (PyBool_Check(timeout.ptr())) {
    throw pyb::type_error("offload: timeout must be a number or None, got bool");
  }
  const double seconds = PyFloat_AsDouble(timeout.ptr());
  if (seconds == -1.0 && PyErr_Occurred()) {
    const bool overflow = PyErr_ExceptionMatches(PyExc_OverflowError);
    PyErr_Clear();
    if (overflow) throw pyb::value_error("offload: timeout is too large");
    throw pyb::type_error("offload: timeout must be a number or None, got " +
                          std::string(Py_TYPE(timeout.ptr())->tp_name));
  }
  if (seconds != seconds) throw pyb::value_error("offload: timeout must not be NaN");
  return seconds;
}

void bind_checks(pyb::module_& m) {
  m.def("check_callable", [](const pyb::handle& fn) { require_callable(fn); }, pyb::arg("fn"),
        "Raises TypeError unless fn is callable.");
  m.def("check_timeout", &checked_timeout, pyb::arg("timeout"),
        "A timeout as float seconds, or None (no limit); TypeError or ValueError for a bad one.");
}

}  // namespace offload::py
