#include "call.h"

#include <utility>

#include "native_types.h"
#include "python_runtime.h"

namespace offload::py {
namespace {

PyTypeObject* future_base = nullptr;  // asyncio.Future (the C one; a strong reference)
PyTypeObject* call_type = nullptr;
PyTypeObject* lazy_type = nullptr;
PyObject* base_result = nullptr;       // asyncio.Future.result, called with the Call as self
PyObject* base_cancel = nullptr;       // asyncio.Future.cancel
PyObject* blocking_name = nullptr;     // "_asyncio_future_blocking"
PyObject* loop_name = nullptr;         // "loop"
PyObject* empty_tuple = nullptr;

// ---------------------------------------------------------------------------------------------
// Call: an asyncio.Future whose type adds the coroutine protocol. It has no state of its own,
// so everything but the protocol is the base type's: its memory layout, callbacks, repr and
// its finalizer ("exception was never retrieved").

// One step of a Task driving the Call, as a coroutine that awaits the future would take it:
// while pending, it yields the future itself, marked as blocking, for the Task to wait on;
// once done, it returns the result or raises the exception (CancelledError if cancelled).
Step call_step(PyObject* self, PyObject** out) {
  *out = nullptr;
  if (!future_done(self)) {
    if (PyObject_SetAttr(self, blocking_name, Py_True) < 0) return Step::kError;
    *out = new_ref(self);
    return Step::kYield;
  }
  *out = PyObject_Vectorcall(base_result, &self, 1, nullptr);
  return *out == nullptr ? Step::kError : Step::kReturn;
}

// The Task driving this Call lets go of it (cancelled before its first step, or closed by a
// TaskGroup that is shutting down): the work is not wanted any more.
void abandon(PyObject* self) {
  if (future_done(self)) return;
  Ref r = Ref::steal(PyObject_Vectorcall(base_cancel, &self, 1, nullptr));
  if (!r) log_raised("offload: a Call refused to be cancelled");
}

// As a Task steps it: what is sent in is ignored, as a coroutine awaiting the future would.
Step call_send_step(PyObject* self, PyObject*, PyObject** out) { return call_step(self, out); }

PyObject* call_throw(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (!check_throw_args(nargs)) return nullptr;
  abandon(self);
  raise_thrown(args, nargs);
  return nullptr;
}

PyObject* call_close(PyObject* self, PyObject*) {
  abandon(self);
  Py_RETURN_NONE;
}

PyObject* call_name(PyObject*, void*) { return PyUnicode_FromString("offload.Call"); }

// As subtype_dealloc does for a Python subclass: run the finalizer (the base only does so for
// its exact type before Python 3.12), let the base free the object, and drop the instance's
// reference to its heap type unless the base's dealloc does (a heap base does it itself).
void call_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  if (PyObject_CallFinalizerFromDealloc(self) < 0) return;  // resurrected
  const bool drop_type = !(future_base->tp_flags & Py_TPFLAGS_HEAPTYPE);
  future_base->tp_dealloc(self);
  if (drop_type) Py_DECREF(type);
}

// Instances of a heap type own a reference to it: visited here unless the base visits it.
int call_traverse(PyObject* self, visitproc visit, void* arg) {
  if (!(future_base->tp_flags & Py_TPFLAGS_HEAPTYPE)) Py_VISIT(Py_TYPE(self));
  return future_base->tp_traverse(self, visit, arg);
}

PyMethodDef call_methods[] = {
    {"send", coroutine_send<call_send_step>, METH_O,
     "Steps the call as a coroutine: yields the future while it is pending, then returns its "
     "result (as StopIteration) or raises its exception."},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(call_throw)),
     METH_FASTCALL,
     "Raises an exception into the call as into a coroutine: the call is cancelled if it has "
     "not finished (a running call sees offload.cancelled()), and the exception is raised."},
    {"close", call_close, METH_NOARGS,
     "Closes the call as a coroutine: the call is cancelled if it has not finished."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef call_getset[] = {
    {"__name__", call_name, nullptr, nullptr, nullptr},
    {"__qualname__", call_name, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

constexpr const char* kCallDoc =
    "What :func:`offload.run`, :meth:`Pool.run` and :meth:`Pool.map` return: the call's\n"
    ":class:`asyncio.Future`, of the loop that was running when the call was made, which is\n"
    "also a coroutine.\n\n"
    "The call is submitted at once. As a future, the call goes to :func:`asyncio.gather`,\n"
    ":func:`~asyncio.ensure_future`, :func:`~asyncio.wait_for`, :func:`~asyncio.shield` and\n"
    ":func:`~asyncio.as_completed` as it is, with no task around it; as a coroutine,\n"
    ":func:`asyncio.create_task` and ``TaskGroup.create_task`` accept it, as they accept\n"
    "``asyncio.to_thread(...)``. Cancelling it, or the task that awaits it, cancels the call if\n"
    "it has not started (a running call can poll :func:`offload.cancelled`).\n\n"
    ">>> async def main() -> list:\n"
    "...     call = offload.run(sum, [1, 2, 3])                      # already submitted\n"
    "...     task = asyncio.create_task(offload.run(max, [4, 5]))   # a coroutine for tasks\n"
    "...     return await asyncio.gather(call, task)                # a future for gather\n"
    ">>> asyncio.run(main())\n"
    "[6, 5]\n\n"
    "With no running loop, ``run`` and ``map`` return a coroutine instead that starts the call\n"
    "on the loop that first awaits it, as ``asyncio.to_thread`` does (never awaited, it warns\n"
    "``RuntimeWarning: coroutine ... was never awaited``):\n\n"
    ">>> asyncio.run(offload.run(sum, [1, 2, 3]))\n"
    "6\n\n"
    ":func:`asyncio.wait` refuses calls from Python 3.11 on, as it refuses every coroutine\n"
    "(``asyncio.to_thread(...)`` too): hand it tasks, ``asyncio.wait([asyncio.create_task(call)])``.\n";

PyTypeObject* make_call_type() {
  PyType_Slot slots[] = {
#if PY_VERSION_HEX >= 0x030A0000
      {Py_am_send, reinterpret_cast<void*>(coroutine_am_send<call_send_step>)},
#endif
      {Py_tp_methods, call_methods},
      {Py_tp_getset, call_getset},
      {Py_tp_dealloc, reinterpret_cast<void*>(call_dealloc)},
      {Py_tp_traverse, reinterpret_cast<void*>(call_traverse)},
      {Py_tp_clear, reinterpret_cast<void*>(future_base->tp_clear)},
      {Py_tp_doc, const_cast<char*>(kCallDoc)},
      {0, nullptr},
  };
  PyType_Spec spec = {"offload.Call", 0, 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, slots};
  Ref bases = Ref::steal(PyTuple_Pack(1, reinterpret_cast<PyObject*>(future_base)));
  if (!bases) return nullptr;
  return new_native_type(&spec, bases.get());  // only offload makes them, bound to a running loop
}

// ---------------------------------------------------------------------------------------------
// LazyCall: a coroutine that starts its call on the loop of its first step.

enum LazyState { kFresh, kStarted, kDone };

struct LazyCall {
  PyObject_HEAD
  PyObject* name;   // str, for the never-awaited warning and reprs
  PyObject* start;  // start(call, *args); null once started or closed
  PyObject* args;   // tuple
  PyObject* call;   // the Call, while started
  int state;
  bool running;     // inside a step: a re-entrant one is refused, as by coroutines
};

LazyCall* as_lazy(PyObject* self) { return reinterpret_cast<LazyCall*>(self); }

// Drops what the lazy call holds once it is over (started calls keep nothing either).
void finish(LazyCall* self) {
  self->state = kDone;
  Py_CLEAR(self->start);
  Py_CLEAR(self->args);
  Py_CLEAR(self->call);
}

// start(call, *args): the work of `call` submitted. False with an error set.
bool start_with(PyObject* start, PyObject* call, PyObject* args) {
  Ref head = Ref::steal(PyTuple_Pack(1, call));
  Ref all = head ? Ref::steal(PySequence_Concat(head.get(), args)) : Ref();
  Ref r = all ? Ref::steal(PyObject_Call(start, all.get(), nullptr)) : Ref();
  return static_cast<bool>(r);
}

// Makes the Call on the running loop and starts the work.
bool begin(LazyCall* self) {
  PyObject* loop = running_loop();
  if (loop == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "no running event loop");
    finish(self);
    return false;
  }
  Ref call = Ref::steal(new_call(loop));
  if (!call) {
    finish(self);
    return false;
  }
  Ref start = Ref::steal(std::exchange(self->start, nullptr));
  Ref args = Ref::steal(std::exchange(self->args, nullptr));
  if (!start_with(start.get(), call.get(), args.get())) {
    finish(self);
    return false;
  }
  self->call = call.release();
  self->state = kStarted;
  return true;
}

Step lazy_step(PyObject* op, PyObject* arg, PyObject** out) {
  auto* self = as_lazy(op);
  *out = nullptr;
  RunningScope<LazyCall> running(self);
  if (!running.entered()) return Step::kError;
  if (self->state == kDone) return refuse_reuse();
  if (self->state == kFresh) {
    if (!check_first_send(arg) || !begin(self)) return Step::kError;
  }
  const Step step = call_step(self->call, out);
  if (step != Step::kYield) finish(self);
  return step;
}

// Interrupted: a call not started never starts; a started one is abandoned (cancelled).
void interrupt(LazyCall* self) {
  if (self->state == kStarted) abandon(self->call);
  finish(self);
}

PyObject* lazy_throw(PyObject* op, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = as_lazy(op);
  if (!check_throw_args(nargs)) return nullptr;
  RunningScope<LazyCall> running(self);
  if (!running.entered()) return nullptr;
  interrupt(self);
  raise_thrown(args, nargs);
  return nullptr;
}

PyObject* lazy_close(PyObject* op, PyObject*) {
  auto* self = as_lazy(op);
  RunningScope<LazyCall> running(self);
  if (!running.entered()) return nullptr;
  interrupt(self);
  Py_RETURN_NONE;
}

PyObject* lazy_self(PyObject* self) { return new_ref(self); }

PyObject* lazy_name(PyObject* self, void*) { return new_ref(as_lazy(self)->name); }

PyObject* lazy_repr(PyObject* op) {
  auto* self = as_lazy(op);
  static const char* const states[] = {"not started", "started", "done"};
  return PyUnicode_FromFormat("<offload.LazyCall %U %s>", self->name, states[self->state]);
}

int lazy_traverse(PyObject* op, visitproc visit, void* arg) {
  auto* self = as_lazy(op);
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->name);
  Py_VISIT(self->start);
  Py_VISIT(self->args);
  Py_VISIT(self->call);
  return 0;
}

int lazy_clear(PyObject* op) {
  auto* self = as_lazy(op);
  Py_CLEAR(self->start);
  Py_CLEAR(self->args);
  Py_CLEAR(self->call);
  return 0;
}

// Like a coroutine, a lazy call that was never awaited says so: its work never ran.
void lazy_finalize(PyObject* op) {
  auto* self = as_lazy(op);
  if (self->state != kFresh || self->start == nullptr) return;
  warn_never_awaited(op, self->name);
}

void lazy_dealloc(PyObject* op) {
  PyTypeObject* type = Py_TYPE(op);
  if (PyObject_CallFinalizerFromDealloc(op) < 0) return;  // resurrected
  PyObject_GC_UnTrack(op);
  lazy_clear(op);
  Py_CLEAR(as_lazy(op)->name);
  PyObject_GC_Del(op);
  Py_DECREF(type);
}

PyMethodDef lazy_methods[] = {
    {"send", coroutine_send<lazy_step>, METH_O, "Steps the call, as coroutine.send()."},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(lazy_throw)),
     METH_FASTCALL,
     "Raises an exception into the call, as coroutine.throw(): a call not started never "
     "starts, a started one is cancelled."},
    {"close", lazy_close, METH_NOARGS,
     "Closes the call, as coroutine.close(): a call not started never starts, a started one "
     "is cancelled."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef lazy_getset[] = {
    {"__name__", lazy_name, nullptr, nullptr, nullptr},
    {"__qualname__", lazy_name, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject* make_lazy_type() {
  static PyType_Slot slots[] = {
      {Py_am_await, reinterpret_cast<void*>(lazy_self)},
#if PY_VERSION_HEX >= 0x030A0000
      {Py_am_send, reinterpret_cast<void*>(coroutine_am_send<lazy_step>)},
#endif
      {Py_tp_iter, reinterpret_cast<void*>(lazy_self)},
      {Py_tp_iternext, reinterpret_cast<void*>(coroutine_iternext<lazy_step>)},
      {Py_tp_methods, lazy_methods},
      {Py_tp_getset, lazy_getset},
      {Py_tp_repr, reinterpret_cast<void*>(lazy_repr)},
      {Py_tp_traverse, reinterpret_cast<void*>(lazy_traverse)},
      {Py_tp_clear, reinterpret_cast<void*>(lazy_clear)},
      {Py_tp_dealloc, reinterpret_cast<void*>(lazy_dealloc)},
      {Py_tp_finalize, reinterpret_cast<void*>(lazy_finalize)},
      {Py_tp_doc, const_cast<char*>(
                      "The result of offload.run, Pool.run and Pool.map with no running loop: "
                      "a coroutine that starts the call on the loop that first awaits it, as "
                      "asyncio.to_thread's does.")},
      {0, nullptr},
  };
  static PyType_Spec spec = {"offload.LazyCall", sizeof(LazyCall), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | kNoInstances, slots};
  return new_native_type(&spec);
}

// _core.start_call(name, start, *args): a Call started at once in a running loop, else a
// LazyCall (see call.h).
PyObject* start_call(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 2 || !PyUnicode_Check(args[0]) || !PyCallable_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "start_call(name: str, start, /, *args)");
    return nullptr;
  }
  Ref rest = Ref::steal(PyTuple_New(nargs - 2));
  if (!rest) return nullptr;
  for (Py_ssize_t i = 2; i < nargs; ++i) PyTuple_SET_ITEM(rest.get(), i - 2, new_ref(args[i]));
  PyObject* loop = running_loop();
  if (loop == nullptr) return new_lazy_call(args[0], args[1], rest.get());
  Ref call = Ref::steal(new_call(loop));
  if (!call || !start_with(args[1], call.get(), rest.get())) return nullptr;
  return call.release();
}

PyMethodDef start_call_def = {
    "start_call", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(start_call)),
    METH_FASTCALL,
    "start_call(name, start, /, *args)\n--\n\n"
    "In a running loop: a Call on it, after start(call, *args) submitted its work. With no "
    "running loop: a LazyCall that does the same when first awaited."};

}  // namespace

PyObject* new_call(PyObject* loop) {
  PyObject* self = call_type->tp_alloc(call_type, 0);
  if (self == nullptr) return nullptr;
  // Future.__init__(self, loop=loop), with one {"loop": ...} dict reused by every call (its
  // arguments are parsed before __init__ runs any code that could come back here; a nested
  // call meanwhile takes a dict of its own).
  static PyObject* kwargs = PyDict_New();
  static bool kwargs_in_use = false;
  Ref own_kwargs;
  PyObject* args = kwargs;
  if (kwargs_in_use || kwargs == nullptr) {
    own_kwargs = Ref::steal(PyDict_New());
    args = own_kwargs.get();
  }
  if (args == nullptr || PyDict_SetItem(args, loop_name, loop) < 0) {
    Py_DECREF(self);
    return nullptr;
  }
  const bool shared = args == kwargs;
  if (shared) kwargs_in_use = true;
  const int status = future_base->tp_init(self, empty_tuple, args);
  if (shared) {
    kwargs_in_use = false;
    PyDict_SetItem(args, loop_name, Py_None);  // holds no loop between calls
  }
  if (status < 0) {
    Py_DECREF(self);
    return nullptr;
  }
  return self;
}

PyObject* new_lazy_call(PyObject* name, PyObject* start, PyObject* args) {
  auto* self = PyObject_GC_New(LazyCall, lazy_type);
  if (self == nullptr) return nullptr;
  self->name = new_ref(name);
  self->start = new_ref(start);
  self->args = new_ref(args);
  self->call = nullptr;
  self->state = kFresh;
  self->running = false;
  PyObject_GC_Track(self);
  return reinterpret_cast<PyObject*>(self);
}

bool add_call_types(PyObject* module) {
  Ref asyncio = Ref::steal(PyImport_ImportModule("asyncio"));
  if (!asyncio) return false;
  Ref base = Ref::steal(PyObject_GetAttrString(asyncio.get(), "Future"));
  if (!base) return false;
  if (!PyType_Check(base.get())) {
    PyErr_SetString(PyExc_TypeError, "offload: asyncio.Future is not a type");
    return false;
  }
  future_base = reinterpret_cast<PyTypeObject*>(base.release());
  base_result = PyObject_GetAttrString(reinterpret_cast<PyObject*>(future_base), "result");
  base_cancel = PyObject_GetAttrString(reinterpret_cast<PyObject*>(future_base), "cancel");
  blocking_name = PyUnicode_InternFromString("_asyncio_future_blocking");
  loop_name = PyUnicode_InternFromString("loop");
  empty_tuple = PyTuple_New(0);
  if (!base_result || !base_cancel || !blocking_name || !loop_name ||
      !empty_tuple) {
    return false;
  }
  call_type = make_call_type();
  if (call_type == nullptr) return false;
  lazy_type = make_lazy_type();
  if (lazy_type == nullptr) return false;
  Ref start = Ref::steal(PyCFunction_NewEx(&start_call_def, nullptr, nullptr));
  return start && PyModule_AddObject(module, "Call", new_ref(reinterpret_cast<PyObject*>(call_type))) == 0 &&
         PyModule_AddObject(module, "LazyCall", new_ref(reinterpret_cast<PyObject*>(lazy_type))) == 0 &&
         PyModule_AddObject(module, "start_call", start.release()) == 0;
}

}  // namespace offload::py
