#include "package.h"

#include <string>

#include "checks.h"
#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {

namespace package_state {
PackageObjects objects{};
}  // namespace package_state

namespace {

void require_exception_class(const pyb::handle& obj, const char* what) {
  if (!PyExceptionClass_Check(obj.ptr())) {
    throw pyb::type_error(std::string("offload: connect() needs an exception class for ") + what);
  }
}

void connect(const pyb::object& channel_closed, const pyb::object& would_block,
             const pyb::object& channel_empty, const pyb::object& channel_recv,
             const pyb::object& recv_wait, const pyb::object& send_wait,
             const pyb::object& anext_wait, const pyb::object& default_pool,
             const pyb::object& thread_started, const pyb::object& thread_stopping) {
  require_exception_class(channel_closed, "channel_closed");
  require_exception_class(would_block, "would_block");
  for (const pyb::handle& fn : {recv_wait, send_wait, anext_wait, default_pool, thread_started,
                                thread_stopping}) {
    require_callable(fn);
  }
  // All at once, after every check. A second connect (importlib.reload of the package) replaces
  // them; the old objects are kept, as code running now may still use them.
  package_state::objects = PackageObjects{
      new_ref(channel_closed.ptr()), new_ref(would_block.ptr()), new_ref(channel_empty.ptr()),
      new_ref(channel_recv.ptr()),   new_ref(recv_wait.ptr()),   new_ref(send_wait.ptr()),
      new_ref(anext_wait.ptr()),     new_ref(default_pool.ptr()), new_ref(thread_started.ptr()),
      new_ref(thread_stopping.ptr())};
}

}  // namespace

bool connected() { return package_state::objects.thread_stopping != nullptr; }

bool check_connected() {
  if (connected()) return true;
  PyErr_SetString(PyExc_RuntimeError,
                  "offload: the native core was used before the offload package connected to it "
                  "(offload/__init__.py calls _core.connect() at the end of its import)");
  return false;
}

void require_connected() {
  if (!check_connected()) throw pyb::error_already_set();
}

void bind_package(pyb::module_& m) {
  m.def("connect", &connect, pyb::kw_only(), pyb::arg("channel_closed"), pyb::arg("would_block"),
        pyb::arg("channel_empty"), pyb::arg("channel_recv"), pyb::arg("recv_wait"),
        pyb::arg("send_wait"), pyb::arg("anext_wait"), pyb::arg("default_pool"),
        pyb::arg("thread_started"), pyb::arg("thread_stopping"),
        "Hands the package's objects to the native module (package.h); offload/__init__.py "
        "calls it once, when every module is imported.");
  m.def("connected", &connected);
}

}  // namespace offload::py
