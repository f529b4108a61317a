#include "native_types.h"

#include "python_runtime.h"

namespace offload::py {

void set_stop_iteration(PyObject* value) {
  if (value == Py_None) {
    PyErr_SetNone(PyExc_StopIteration);
    return;
  }
  // StopIteration(value), so that a tuple or an exception value is not taken for the args.
  PyObject* stop = PyObject_CallOneArg(PyExc_StopIteration, value);
  if (stop != nullptr) {
    PyErr_SetObject(PyExc_StopIteration, stop);
    Py_DECREF(stop);
  }
}

bool check_throw_args(Py_ssize_t nargs) {
  if (nargs >= 1 && nargs <= 3) return true;
  PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
  return false;
}

void raise_thrown(PyObject* const* args, Py_ssize_t nargs) {
  PyObject* type = args[0];
  PyObject* value = nargs > 1 ? args[1] : Py_None;
  PyObject* traceback = nargs > 2 ? args[2] : Py_None;
  if (PyExceptionInstance_Check(type)) {
    if (value != Py_None) {
      PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
      return;
    }
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(type)), type);
  } else if (PyExceptionClass_Check(type)) {
    PyErr_SetObject(type, value == Py_None ? nullptr : value);
  } else {
    PyErr_Format(PyExc_TypeError,
                 "exceptions must be classes or instances deriving from BaseException, not %s",
                 Py_TYPE(type)->tp_name);
    return;
  }
  if (traceback != Py_None && PyTraceBack_Check(traceback)) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    Py_XDECREF(tb);
    PyErr_Restore(t, v, new_ref(traceback));
  }
}

Step refuse_reuse() {
  PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
  return Step::kError;
}

bool check_first_send(PyObject* arg) {
  if (arg == Py_None) return true;
  PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
  return false;
}

void warn_never_awaited(PyObject* self, PyObject* name) {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "coroutine '%U' was never awaited", name) < 0) {
    PyErr_WriteUnraisable(self);
  }
  PyErr_Restore(type, value, traceback);
}

PyTypeObject* new_native_type(PyType_Spec* spec, PyObject* bases) {
  PyObject* type = bases == nullptr ? PyType_FromSpec(spec) : PyType_FromSpecWithBases(spec, bases);
  if (type == nullptr) return nullptr;
  reinterpret_cast<PyTypeObject*>(type)->tp_new = nullptr;
  return reinterpret_cast<PyTypeObject*>(type);
}

}  // namespace offload::py
