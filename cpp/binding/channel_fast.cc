#include "channel_fast.h"

#include <cmath>

#include "channel.h"
#include "channel_awaitable.h"
#include "native_types.h"
#include "package.h"
#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

// The `self` of the bound functions: a Bound in an object that Python's gc traverses (unlike a
// capsule), so that its reference to the owner does not keep a garbage channel alive.
struct BoundChannel {
  PyObject_HEAD
  Bound bound;
};
PyTypeObject* bound_type = nullptr;

Bound* bound_of(PyObject* self) { return &reinterpret_cast<BoundChannel*>(self)->bound; }

bool check_args(const char* name, Py_ssize_t nargs, Py_ssize_t expected, PyObject* kwnames) {
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
    PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", name);
    return false;
  }
  if (nargs != expected) {
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s but %zd were given", name,
                 expected, expected == 1 ? "" : "s", nargs);
    return false;
  }
  return true;
}


PyObject* fast_recv(PyObject* self, PyObject* const*, Py_ssize_t nargsf, PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("recv", PyVectorcall_NARGS(nargsf), 0, kwnames)) return nullptr;
  return new_channel_awaitable(*b, kAwaitRecv, nullptr);
}

PyObject* fast_send(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                    PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("send", PyVectorcall_NARGS(nargsf), 1, kwnames)) return nullptr;
  return new_channel_awaitable(*b, kAwaitSend, args[0]);
}

PyObject* fast_anext(PyObject* self, PyObject* const*, Py_ssize_t nargsf, PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("__anext__", PyVectorcall_NARGS(nargsf), 0, kwnames)) {
    return nullptr;
  }
  return new_channel_awaitable(*b, kAwaitNext, nullptr);
}

PyObject* fast_send_nowait(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                           PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("send_nowait", PyVectorcall_NARGS(nargsf), 1, kwnames)) {
    return nullptr;
  }
  const int sent = b->channel->try_offer(args[0]);
  if (sent < 0) return nullptr;
  if (sent == 0) {
    PyErr_SetString(package().would_block, "offload: the channel is full");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* fast_recv_nowait(PyObject* self, PyObject* const*, Py_ssize_t nargsf,
                           PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("recv_nowait", PyVectorcall_NARGS(nargsf), 0, kwnames)) {
    return nullptr;
  }
  PyObject* item = b->channel->try_poll();
  if (item == package().channel_empty) {
    Py_DECREF(item);
    PyErr_SetString(package().would_block, "offload: the channel is empty");
    return nullptr;
  }
  return item;
}

// (positional..., timeout=None): the timeout, positional or by keyword; null on a bad call.
bool parse_timeout(const char* name, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames,
                   Py_ssize_t required, PyObject** timeout) {
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  *timeout = Py_None;
  if (nargs < required || nargs + nkw > required + 1) {
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s and an optional timeout",
                 name, required, required == 1 ? "" : "s");
    return false;
  }
  if (nargs == required + 1) *timeout = args[required];
  if (nkw == 1) {
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout") != 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", name,
                   PyTuple_GET_ITEM(kwnames, 0));
      return false;
    }
    *timeout = args[nargs];
  }
  return true;
}

// None, or a float or int that checked_timeout accepts (not NaN, within a float): a timeout
// the fast path may ignore because the operation needs no wait. Anything else goes through
// the checked slow path, which raises for a bad one.
bool plain_timeout(PyObject* timeout) {
  if (timeout == Py_None) return true;
  if (PyFloat_CheckExact(timeout)) return !std::isnan(PyFloat_AS_DOUBLE(timeout));
  if (!PyLong_CheckExact(timeout)) return false;
  if (PyLong_AsDouble(timeout) == -1.0 && PyErr_Occurred()) {  // beyond a float
    PyErr_Clear();
    return false;
  }
  return true;
}

PyObject* fast_send_blocking(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                             PyObject* kwnames) {
  Bound* b = bound_of(self);
  PyObject* timeout;
  if (!parse_timeout("send_blocking", args, nargsf, kwnames, 1, &timeout)) {
    return nullptr;
  }
  if (plain_timeout(timeout)) {
    const int sent = b->channel->try_offer(args[0]);
    if (sent < 0) return nullptr;
    if (sent > 0) Py_RETURN_NONE;
  }
  return guarded([&] {
    b->channel->send_blocking(pyb::reinterpret_borrow<pyb::object>(args[0]),
                              pyb::reinterpret_borrow<pyb::object>(timeout));
    return new_ref(Py_None);
  });
}

PyObject* fast_recv_blocking(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                             PyObject* kwnames) {
  Bound* b = bound_of(self);
  PyObject* timeout;
  if (!parse_timeout("recv_blocking", args, nargsf, kwnames, 0, &timeout)) {
    return nullptr;
  }
  if (plain_timeout(timeout)) {
    PyObject* item = b->channel->try_poll();
    if (item != package().channel_empty) return item;  // or null: closed and drained
    Py_DECREF(item);
  }
  return guarded([&] {
    return b->channel->recv_blocking(pyb::reinterpret_borrow<pyb::object>(timeout)).release().ptr();
  });
}

#define OFFLOAD_FASTCALL(fn) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(fn))
PyMethodDef fast_defs[] = {
    {"recv", OFFLOAD_FASTCALL(fast_recv), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"send", OFFLOAD_FASTCALL(fast_send), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"__anext__", OFFLOAD_FASTCALL(fast_anext), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"send_nowait", OFFLOAD_FASTCALL(fast_send_nowait), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"recv_nowait", OFFLOAD_FASTCALL(fast_recv_nowait), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"send_blocking", OFFLOAD_FASTCALL(fast_send_blocking), METH_FASTCALL | METH_KEYWORDS,
     nullptr},
    {"recv_blocking", OFFLOAD_FASTCALL(fast_recv_blocking), METH_FASTCALL | METH_KEYWORDS,
     nullptr},
};
#undef OFFLOAD_FASTCALL

// BoundChannel has no tp_clear: it keeps its owner until it is freed, so that `channel` stays
// valid for any bound function still called from the same garbage; the gc breaks the cycle
// elsewhere (the channel's items, a __dict__).
int bound_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(bound_of(self)->owner);
  return 0;
}

void bound_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  Py_DECREF(bound_of(self)->owner);
  PyObject_GC_Del(self);
  Py_DECREF(type);
}

PyTypeObject* make_bound_type() {
  static PyType_Slot slots[] = {
      {Py_tp_traverse, reinterpret_cast<void*>(bound_traverse)},
      {Py_tp_dealloc, reinterpret_cast<void*>(bound_dealloc)},
      {Py_tp_doc, const_cast<char*>("A channel as its bound native functions see it.")},
      {0, nullptr},
  };
  static PyType_Spec spec = {"offload._core.BoundChannel", sizeof(BoundChannel), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | kNoInstances, slots};
  return new_native_type(&spec);  // only bind_fast_path makes them
}

}  // namespace

pyb::dict bind_fast_path(PyChannel* channel, const pyb::object& owner) {
  BoundChannel* bound = PyObject_GC_New(BoundChannel, bound_type);
  if (bound == nullptr) throw pyb::error_already_set();
  bound->bound = Bound{channel, new_ref(owner.ptr())};
  PyObject_GC_Track(bound);
  pyb::object self = pyb::reinterpret_steal<pyb::object>(reinterpret_cast<PyObject*>(bound));
  pyb::dict functions;
  for (PyMethodDef& def : fast_defs) {
    PyObject* fn = PyCFunction_NewEx(&def, self.ptr(), nullptr);
    if (fn == nullptr) throw pyb::error_already_set();
    functions[def.ml_name] = pyb::reinterpret_steal<pyb::object>(fn);
  }
  return functions;
}

void bind_channel_fast(pyb::module_&) {
  bound_type = make_bound_type();
  if (bound_type == nullptr) throw pyb::error_already_set();
}

}  // namespace offload::py
