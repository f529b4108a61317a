#include "notifier.h"

#include <memory>

#include "checks.h"
#include "offload/notifier.h"
#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {

void bind_notifier(pyb::module_& m) {
  pyb::class_<Notifier, std::shared_ptr<Notifier>>(m, "Notifier")
      .def(pyb::init([]() { return std::make_shared<Notifier>(); }))
      .def(pyb::init([](pyb::object wake) {
             require_callable(wake);
             auto fn = std::make_shared<Ref>(Ref::borrow(wake.ptr()));
             return std::make_shared<Notifier>([fn] {
               GilScope gil;
               if (!gil.acquired()) return;
               Ref r = Ref::steal(PyObject_CallNoArgs(fn->get()));
               if (!r) PyErr_Clear();  // the loop is closed: nothing left to wake
             });
           }),
           pyb::arg("wake"))
      .def_property_readonly("fd", &Notifier::fd)
      .def("drain",
           [](Notifier& n) {
             collect_garbage();
             return n.drain();
           })
      .def("close", &Notifier::close)
      .def("call_soon",
           [](Notifier& n, pyb::object fn) {
             // fn() on the loop's thread, in the notifier's next batch. False when the notifier
             // is closed (fn is dropped, unrun).
             require_callable(fn);
             return n.add([fn = Ref::borrow(fn.ptr())] {
                       Ref r = Ref::steal(PyObject_CallNoArgs(fn.get()));
                       if (!r) log_raised("offload: a callback on the event loop failed");
                     })
                 .ok();
           },
           pyb::arg("fn"))
      .def_property_readonly("closed", &Notifier::closed)
      .def("stats", [](const Notifier& n) {
        Notifier::Stats s = n.stats();
        pyb::dict d;
        d["added"] = s.added;
        d["wakes"] = s.wakes;
        d["drains"] = s.drains;
        d["ran"] = s.ran;
        return d;
      });
}

}  // namespace offload::py
