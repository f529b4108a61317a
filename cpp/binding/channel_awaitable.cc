#include "channel_awaitable.h"

#include <utility>

#include "channel.h"
#include "native_types.h"
#include "package.h"
#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

enum AwaitState { kFresh, kDelegating, kDone };

struct ChannelAwaitable {
  PyObject_HEAD
  Bound bound;     // owner: a strong reference
  int kind;
  int state;
  bool running;     // inside send/throw/close: a re-entrant call is refused, as by coroutines
  PyObject* item;   // kAwaitSend: the item, until offered
  PyObject* inner;  // kDelegating: the slow-path coroutine
};

PyTypeObject* awaitable_type = nullptr;
PyObject* throw_name = nullptr;  // "throw", interned
PyObject* await_names[3] = {};   // "Channel.recv", "Channel.send", "Channel.__anext__"

ChannelAwaitable* as_awaitable(PyObject* self) { return reinterpret_cast<ChannelAwaitable*>(self); }

// Ends the delegation to `inner` if it is still the current one.
void drop_inner(ChannelAwaitable* self, PyObject* inner) {
  self->state = kDone;
  if (self->inner == inner) Py_CLEAR(self->inner);
}

// One step of the delegated coroutine: send `arg` into it. `inner` is pinned for the call.
Step delegate(ChannelAwaitable* self, PyObject* arg, PyObject** out) {
  Ref inner = Ref::borrow(self->inner);
#if PY_VERSION_HEX >= 0x030A0000
  switch (PyIter_Send(inner.get(), arg, out)) {
    case PYGEN_NEXT:
      return Step::kYield;
    case PYGEN_RETURN:
      drop_inner(self, inner.get());
      return Step::kReturn;
    default:
      drop_inner(self, inner.get());
      return Step::kError;
  }
#else
  *out = _PyGen_Send(reinterpret_cast<PyGenObject*>(inner.get()), arg);
  if (*out != nullptr) return Step::kYield;
  drop_inner(self, inner.get());
  if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return Step::kError;
  Ref stop = fetch_error();
  *out = PyObject_GetAttrString(stop.get(), "value");
  return *out == nullptr ? Step::kError : Step::kReturn;
#endif
}

// The first step: the operation at once, else the slow path started and stepped.
Step first_step(ChannelAwaitable* self, PyObject** out) {
  PyChannel& ch = *self->bound.channel;
  PyObject* slow;
  if (self->kind == kAwaitSend) {
    const int sent = ch.try_offer(self->item);
    if (sent != 0) {
      self->state = kDone;
      Py_CLEAR(self->item);
      if (sent < 0) return Step::kError;
      *out = new_ref(Py_None);
      return Step::kReturn;
    }
    slow = PyObject_CallFunctionObjArgs(package().send_wait, self->bound.owner, self->item,
                                        nullptr);
    Py_CLEAR(self->item);
  } else {
    PyObject* item = ch.try_poll();
    if (item != package().channel_empty) {
      self->state = kDone;
      if (item == nullptr && self->kind == kAwaitNext &&
          PyErr_ExceptionMatches(package().channel_closed)) {
        PyErr_SetNone(PyExc_StopAsyncIteration);
      }
      *out = item;
      return item == nullptr ? Step::kError : Step::kReturn;
    }
    Py_DECREF(item);
    slow = PyObject_CallOneArg(
        self->kind == kAwaitRecv ? package().recv_wait : package().anext_wait, self->bound.owner);
  }
  if (slow == nullptr) {
    self->state = kDone;
    return Step::kError;
  }
  self->inner = slow;
  self->state = kDelegating;
  return delegate(self, Py_None, out);
}

Step step(PyObject* op, PyObject* arg, PyObject** out) {
  auto* self = as_awaitable(op);
  *out = nullptr;
  RunningScope<ChannelAwaitable> running(self);
  if (!running.entered()) return Step::kError;
  if (self->state == kDelegating) return delegate(self, arg, out);
  if (self->state == kDone) return refuse_reuse();
  if (!check_first_send(arg)) return Step::kError;
  return first_step(self, out);
}

// throw(exc) / throw(type[, value[, traceback]]): into the slow path if it runs; otherwise the
// operation never started (or is over) and the exception is raised as it is.
PyObject* awaitable_throw(PyObject* op, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = as_awaitable(op);
  if (!check_throw_args(nargs)) return nullptr;
  RunningScope<ChannelAwaitable> running(self);
  if (!running.entered()) return nullptr;
  if (self->state == kDelegating) {
    Ref inner = Ref::borrow(self->inner);
    PyObject* forwarded[4] = {inner.get(), args[0], nargs > 1 ? args[1] : nullptr,
                              nargs > 2 ? args[2] : nullptr};
    PyObject* out = PyObject_VectorcallMethod(
        throw_name, forwarded,
        static_cast<std::size_t>(nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
    if (out == nullptr) drop_inner(self, inner.get());  // returned (StopIteration) or raised
    return out;
  }
  self->state = kDone;
  Py_CLEAR(self->item);
  raise_thrown(args, nargs);
  return nullptr;
}

PyObject* awaitable_close(PyObject* op, PyObject*) {
  auto* self = as_awaitable(op);
  RunningScope<ChannelAwaitable> running(self);
  if (!running.entered()) return nullptr;
  self->state = kDone;
  Py_CLEAR(self->item);
  if (self->inner == nullptr) Py_RETURN_NONE;
  Ref inner = Ref::steal(std::exchange(self->inner, nullptr));
  return PyObject_CallMethod(inner.get(), "close", nullptr);
}

PyObject* awaitable_self(PyObject* self) { return new_ref(self); }

int awaitable_traverse(PyObject* op, visitproc visit, void* arg) {
  auto* self = as_awaitable(op);
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->bound.owner);
  Py_VISIT(self->item);
  Py_VISIT(self->inner);
  return 0;
}

int awaitable_clear(PyObject* op) {
  auto* self = as_awaitable(op);
  Py_CLEAR(self->bound.owner);
  Py_CLEAR(self->item);
  Py_CLEAR(self->inner);
  return 0;
}

// Like a coroutine, one that was never awaited says so: its operation never happened.
void awaitable_finalize(PyObject* op) {
  auto* self = as_awaitable(op);
  if (self->state != kFresh || self->bound.owner == nullptr) return;
  warn_never_awaited(op, await_names[self->kind]);
}

void awaitable_dealloc(PyObject* op) {
  PyTypeObject* type = Py_TYPE(op);
  if (PyObject_CallFinalizerFromDealloc(op) < 0) return;  // resurrected
  PyObject_GC_UnTrack(op);
  awaitable_clear(op);
  PyObject_GC_Del(op);
  Py_DECREF(type);
}

PyMethodDef awaitable_methods[] = {
    {"send", coroutine_send<step>, METH_O, "Steps the operation, as coroutine.send()."},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(awaitable_throw)),
     METH_FASTCALL, "Raises an exception into the operation, as coroutine.throw()."},
    {"close", awaitable_close, METH_NOARGS, "Closes the operation, as coroutine.close()."},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject* make_awaitable_type() {
  static PyType_Slot slots[] = {
      {Py_am_await, reinterpret_cast<void*>(awaitable_self)},
#if PY_VERSION_HEX >= 0x030A0000
      {Py_am_send, reinterpret_cast<void*>(coroutine_am_send<step>)},
#endif
      {Py_tp_iternext, reinterpret_cast<void*>(coroutine_iternext<step>)},
      {Py_tp_methods, awaitable_methods},
      {Py_tp_traverse, reinterpret_cast<void*>(awaitable_traverse)},
      {Py_tp_clear, reinterpret_cast<void*>(awaitable_clear)},
      {Py_tp_dealloc, reinterpret_cast<void*>(awaitable_dealloc)},
      {Py_tp_finalize, reinterpret_cast<void*>(awaitable_finalize)},
      {Py_tp_doc, const_cast<char*>("A channel operation awaited like the coroutine it "
                                    "stands for (offload.Channel.recv, send, __anext__).")},
      {0, nullptr},
  };
  static PyType_Spec spec = {"offload._core.ChannelAwaitable", sizeof(ChannelAwaitable), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | kNoInstances, slots};
  return new_native_type(&spec);
}

}  // namespace

PyObject* new_channel_awaitable(const Bound& bound, AwaitKind kind, PyObject* item) {
  auto* self = PyObject_GC_New(ChannelAwaitable, awaitable_type);
  if (self == nullptr) return nullptr;
  self->bound = Bound{bound.channel, new_ref(bound.owner)};
  self->kind = kind;
  self->state = kFresh;
  self->running = false;
  self->item = item == nullptr ? nullptr : new_ref(item);
  self->inner = nullptr;
  PyObject_GC_Track(self);
  return reinterpret_cast<PyObject*>(self);
}

void bind_channel_awaitable(pyb::module_& m) {
  awaitable_type = make_awaitable_type();
  throw_name = PyUnicode_InternFromString("throw");
  await_names[kAwaitRecv] = PyUnicode_InternFromString("Channel.recv");
  await_names[kAwaitSend] = PyUnicode_InternFromString("Channel.send");
  await_names[kAwaitNext] = PyUnicode_InternFromString("Channel.__anext__");
  if (awaitable_type == nullptr || throw_name == nullptr || await_names[kAwaitRecv] == nullptr ||
      await_names[kAwaitSend] == nullptr || await_names[kAwaitNext] == nullptr) {
    throw pyb::error_already_set();
  }
  m.add_object("ChannelAwaitable", pyb::handle(reinterpret_cast<PyObject*>(awaitable_type)));
}

}  // namespace offload::py
