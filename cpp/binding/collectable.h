// collectable<T>(): Python's cyclic garbage collector support for a pybind11 class whose C++
// object holds Python references, so that a cycle through those references can be collected.
//
//   pyb::class_<PyChannel>(m, "Channel", pyb::dynamic_attr(), collectable<PyChannel>())
//
// T provides, both called with the GIL held:
//   int traverse(visitproc visit, void* arg) const;  // Py_VISIT each reference T owns
//   void clear();  // drops those references (T stays usable: the gc may clear an object that
//                  // something in the same garbage still calls)
//
// traverse() may take a core lock (the order GIL -> core lock holds) but must neither run
// Python nor drop a reference under it; clear() must release every core lock before it drops
// a reference, since that may run __del__. A reference that C++ shares with anything Python
// cannot see (a running task, a queued continuation) is not T's alone: T must not visit it,
// or the gc could clear objects that the other holder still uses.
//
// Chains to what pybind11 set up before (the __dict__ of a dynamic_attr class). The gc only
// calls these when it runs: the object's own operations cost nothing more.

#ifndef OFFLOAD_BINDING_COLLECTABLE_H_
#define OFFLOAD_BINDING_COLLECTABLE_H_

#include <pybind11/pybind11.h>

namespace offload::py {

template <class T>
class Collectable {
 public:
  static void setup(PyHeapTypeObject* heap_type) {
    PyTypeObject* type = &heap_type->ht_type;
    type->tp_flags |= Py_TPFLAGS_HAVE_GC;
    base_traverse_ = type->tp_traverse;
    base_clear_ = type->tp_clear;
    type->tp_traverse = &traverse;
    type->tp_clear = &clear;
  }

 private:
  // The C++ object, or null while it is not constructed yet (pybind11 tracks the instance
  // from its allocation on, before __init__ runs).
  static T* held(PyObject* self) {
    if (!pybind11::detail::is_holder_constructed(self)) return nullptr;
    auto* instance = reinterpret_cast<pybind11::detail::instance*>(self);
    return instance->get_value_and_holder().value_ptr<T>();
  }

  static int traverse(PyObject* self, visitproc visit, void* arg) {
    if (base_traverse_ != nullptr) {
      if (const int stop = base_traverse_(self, visit, arg)) return stop;
    } else {
      Py_VISIT(Py_TYPE(self));  // instances of heap types own a reference to their type
    }
    const T* object = held(self);
    return object == nullptr ? 0 : object->traverse(visit, arg);
  }

  static int clear(PyObject* self) {
    if (base_clear_ != nullptr) base_clear_(self);
    if (T* object = held(self)) object->clear();
    return 0;
  }

  static inline traverseproc base_traverse_ = nullptr;
  static inline inquiry base_clear_ = nullptr;
};

template <class T>
pybind11::custom_type_setup collectable() {
  return pybind11::custom_type_setup(&Collectable<T>::setup);
}

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_COLLECTABLE_H_
