#include "fast_call.h"

#include <utility>

#include "call.h"
#include "checks.h"
#include "jobs.h"
#include "loop_registry.h"
#include "native_types.h"
#include "package.h"
#include "pool.h"
#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

struct Runner {
  PyPool* pool;
  PyObject* owner;  // the _core.Pool object, kept alive by the runner
  PyObject* name;   // what a LazyCall of it is called ("offload.Pool.run"), a str
};

constexpr const char* kRunnerCapsule = "offload._core.Runner";

// Submits fn(*args, **kwargs) (kwargs may be null), in a copy of the current context, to run
// on the pool; its outcome completes `call`, a Call of `loop`. False with an error set.
bool submit_run(Runner* runner, PyObject* loop, PyObject* call, PyObject* fn, Ref args,
                Ref kwargs) {
  Ref context = Ref::steal(PyContext_CopyCurrent());
  if (!context) return false;
  PyObject* submitted = guarded([&] {
    std::shared_ptr<Notifier> notifier = notifier_for(loop);
    runner->pool->run_on_loop(notifier, call,
                              Call{Ref::borrow(fn), std::move(args), std::move(kwargs),
                                   std::move(context)});
    return new_ref(Py_None);
  });
  Py_XDECREF(submitted);
  return submitted != nullptr;
}

// The start of a LazyCall of run: start_run(call, runner, fn, args, kwargs), on the loop of
// its first step. The context is copied now, in the awaiting task, as asyncio.to_thread does.
PyObject* start_run(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5) {
    PyErr_SetString(PyExc_TypeError, "start_run() takes 5 arguments");
    return nullptr;
  }
  auto* runner = static_cast<Runner*>(PyCapsule_GetPointer(args[1], kRunnerCapsule));
  if (runner == nullptr) return nullptr;
  PyObject* loop = running_loop();
  if (loop == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "no running event loop");
    return nullptr;
  }
  if (!submit_run(runner, loop, args[0], args[2], Ref::borrow(args[3]),
                  args[4] == Py_None ? Ref() : Ref::borrow(args[4]))) {
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef start_run_def = {
    "start_run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(start_run)),
    METH_FASTCALL, nullptr};
PyObject* start_run_fn = nullptr;  // start_run as a function object

// pool.run(fn, *args, **kwargs): a Call of the running loop with the call submitted, or with no
// running loop a LazyCall that submits it when first awaited.
PyObject* fast_run(PyObject* capsule, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  auto* runner = static_cast<Runner*>(PyCapsule_GetPointer(capsule, kRunnerCapsule));
  if (runner == nullptr) return nullptr;
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "run() missing 1 required positional argument: 'fn'");
    return nullptr;
  }
  PyObject* fn = args[0];
  if (!check_callable(fn)) return nullptr;
  Ref call_args = Ref::steal(PyTuple_New(nargs - 1));
  if (!call_args) return nullptr;
  for (Py_ssize_t i = 1; i < nargs; ++i) {
    PyTuple_SET_ITEM(call_args.get(), i - 1, new_ref(args[i]));
  }
  Ref kwargs;
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
    kwargs = Ref::steal(PyDict_New());
    if (!kwargs) return nullptr;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i) {
      if (PyDict_SetItem(kwargs.get(), PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
        return nullptr;
      }
    }
  }
  PyObject* loop = running_loop();
  if (loop == nullptr) {
    Ref start_args = Ref::steal(PyTuple_Pack(4, capsule, fn, call_args.get(),
                                             kwargs ? kwargs.get() : Py_None));
    if (!start_args) return nullptr;
    return new_lazy_call(runner->name, start_run_fn, start_args.get());
  }
  Ref call = Ref::steal(new_call(loop));
  if (!call) return nullptr;
  if (!submit_run(runner, loop, call.get(), fn, std::move(call_args), std::move(kwargs))) {
    return nullptr;
  }
  return call.release();
}

PyMethodDef fast_run_def = {
    "run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(fast_run)),
    METH_FASTCALL | METH_KEYWORDS,
    "run(fn, /, *args, **kwargs)\n--\n\nRuns ``fn(*args, **kwargs)`` on the pool; returns its "
    ":class:`offload.Call`."};

// offload.run: fast_run on the default pool, which the package creates on first use.
PyObject* default_runner = nullptr;  // its runner's capsule, once created

PyObject* run_on_default(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  if (default_runner == nullptr) {
    if (!check_connected()) return nullptr;
    Ref pool = Ref::steal(PyObject_CallNoArgs(package().default_pool));
    if (!pool) return nullptr;
    Ref run = Ref::steal(PyObject_GetAttrString(pool.get(), "_run"));
    if (!run) return nullptr;
    if (default_runner == nullptr) default_runner = new_ref(PyCFunction_GET_SELF(run.get()));
  }
  return fast_run(default_runner, args, nargsf, kwnames);
}

PyMethodDef run_on_default_def = {
    "run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(run_on_default)),
    METH_FASTCALL | METH_KEYWORDS,
    "run(fn, /, *args, **kwargs)\n--\n\n"
    "Runs ``fn(*args, **kwargs)`` on the default pool: a drop-in for :func:`asyncio.to_thread`,\n"
    "much cheaper per call. Returns a :class:`Call`: in a running loop, the call is submitted\n"
    "at once and the result is that loop's future of it, which is also a coroutine\n"
    "(``create_task``, ``TaskGroup`` and ``gather`` all take it); with no running loop, a\n"
    "coroutine that starts the call when first awaited, as ``to_thread``'s does.\n\n"
    ">>> import hashlib\n"
    ">>> async def main() -> str:\n"
    "...     digest = await offload.run(hashlib.sha256, b\"abc\")\n"
    "...     return digest.hexdigest()[:16]\n"
    ">>> asyncio.run(main())\n"
    "'ba7816bf8f01cfea'\n\n"
    "The call runs in a copy of the caller's :mod:`contextvars` context; its exception is\n"
    "raised with its traceback; cancelling the awaiting task cancels the call if it has not\n"
    "started (a running call can poll :func:`offload.cancelled`).\n\n"
    "Raises:\n"
    "    RuntimeError: the default pool was shut down.\n"
    "    TypeError: ``fn`` is not callable.\n"};

}  // namespace

PyObject* make_runner(PyPool& pool, const pyb::object& owner, const std::string& name) {
  PyObject* name_obj = PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size()));
  if (name_obj == nullptr) throw pyb::error_already_set();
  auto* runner = new Runner{&pool, new_ref(owner.ptr()), name_obj};
  PyObject* capsule = PyCapsule_New(runner, kRunnerCapsule, [](PyObject* c) {
    auto* r = static_cast<Runner*>(PyCapsule_GetPointer(c, kRunnerCapsule));
    Py_DECREF(r->owner);
    Py_DECREF(r->name);
    delete r;
  });
  if (capsule == nullptr) {
    Py_DECREF(runner->owner);
    Py_DECREF(runner->name);
    delete runner;
    throw pyb::error_already_set();
  }
  PyObject* fn = PyCFunction_NewEx(&fast_run_def, capsule, nullptr);
  Py_DECREF(capsule);
  if (fn == nullptr) throw pyb::error_already_set();
  return fn;
}

void bind_fast_call(pyb::module_& m) {
  m.add_object("run_on_default", pyb::reinterpret_steal<pyb::object>(
                                     PyCFunction_NewEx(&run_on_default_def, nullptr, m.ptr())));
  start_run_fn = PyCFunction_NewEx(&start_run_def, nullptr, nullptr);
  if (start_run_fn == nullptr) throw pyb::error_already_set();
}

}  // namespace offload::py
