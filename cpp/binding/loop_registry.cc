#include "loop_registry.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

struct Entry {
  std::uint64_t id = 0;
  Ref loop_ref;  // a weak reference whose callback detaches the entry, or the loop itself
  std::shared_ptr<Notifier> notifier;
  std::vector<std::weak_ptr<LoopBound>> watchers;
  std::size_t watchers_live = 0;  // live ones at the last prune
};

// loop (identity) -> its entry. A loop's entry is gone before the loop's memory is reused: the
// weak reference's callback runs as the loop is deallocated (a loop kept strongly cannot die).
std::unordered_map<PyObject*, Entry>& entries() {
  static auto* map = new std::unordered_map<PyObject*, Entry>();  // never destroyed
  return *map;
}
std::uint64_t next_id = 1;

// -- LoopReader: the callable a loop calls when the notifier's fd is readable ---------------

struct LoopReader {
  PyObject_HEAD
  std::weak_ptr<Notifier>* notifier;  // weak: the entry owns the notifier
  std::uint64_t id;
  bool detach_when_released;  // given to add_reader: released by the loop's close()
};

PyTypeObject* reader_type = nullptr;

void detach(std::uint64_t id);

PyObject* reader_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (PyTuple_GET_SIZE(args) != 0 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
    PyErr_SetString(PyExc_TypeError, "a loop reader takes no arguments");
    return nullptr;
  }
  std::shared_ptr<Notifier> notifier = reinterpret_cast<LoopReader*>(self)->notifier->lock();
  collect_garbage();
  if (notifier) {
    try {
      notifier->drain();
    } catch (pyb::error_already_set& e) {
      e.restore();
      return nullptr;
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      return nullptr;
    }
  }
  Py_RETURN_NONE;
}

void reader_dealloc(PyObject* self) {
  auto* reader = reinterpret_cast<LoopReader*>(self);
  PyTypeObject* type = Py_TYPE(self);
  const std::uint64_t id = reader->id;
  const bool detaching = reader->detach_when_released;
  delete reader->notifier;
  PyObject_Free(self);
  Py_DECREF(type);
  // The loop let go of its reader: it was closed (or collected). Not during finalization.
  if (detaching && !is_finalizing()) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    detach(id);
    PyErr_Restore(t, v, tb);
  }
}

PyTypeObject* make_reader_type() {
  static PyType_Slot slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(reader_call)},
      {Py_tp_dealloc, reinterpret_cast<void*>(reader_dealloc)},
      {Py_tp_doc, const_cast<char*>("Drains an event loop's offload notifier (its fd reader).")},
      {0, nullptr},
  };
  static PyType_Spec spec = {"offload._core.LoopReader", sizeof(LoopReader), 0,
                             Py_TPFLAGS_DEFAULT, slots};
  auto* type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  if (type != nullptr) type->tp_new = nullptr;
  return type;
}

Ref new_reader(const std::shared_ptr<Notifier>& notifier, std::uint64_t id, bool detaching) {
  auto* reader = PyObject_New(LoopReader, reader_type);
  if (reader == nullptr) throw pyb::error_already_set();
  reader->notifier = new std::weak_ptr<Notifier>(notifier);
  reader->id = id;
  reader->detach_when_released = detaching;
  return Ref::steal(reinterpret_cast<PyObject*>(reader));
}

// -- detaching -----------------------------------------------------------------------------

// The loop is gone: its entry leaves the map first (so that whatever runs next may attach and
// look up loops freely), then its watchers give up and its notifier is closed, which releases
// what it still held. Both run Python (destructors, channel hand-offs).
void detach(std::uint64_t id) {
  auto& map = entries();
  auto it = std::find_if(map.begin(), map.end(), [id](const auto& kv) { return kv.second.id == id; });
  if (it == map.end()) return;
  Entry entry = std::move(it->second);
  map.erase(it);
  // Watchers first: a coroutine of this loop withdrawn now cannot be handed an item by the
  // hand-offs that closing the notifier passes on.
  for (const std::weak_ptr<LoopBound>& w : entry.watchers) {
    if (std::shared_ptr<LoopBound> bound = w.lock()) bound->loop_gone();
  }
  entry.notifier->close();
}

PyObject* forget_by_id(PyObject* id, PyObject*) {  // the weak reference's callback
  detach(PyLong_AsUnsignedLongLong(id));
  if (PyErr_Occurred()) return nullptr;
  Py_RETURN_NONE;
}

PyMethodDef forget_def = {"forget_loop", forget_by_id, METH_O, nullptr};

// True when `loop` is closed; a loop whose is_closed() fails counts as open.
bool is_closed(PyObject* loop) {
  Ref closed = Ref::steal(PyObject_CallMethod(loop, "is_closed", nullptr));
  if (!closed) {
    PyErr_Clear();
    return false;
  }
  return closed.get() == Py_True;
}

// Detaches the loops found collected or closed (those whose close() kept their reader).
void sweep() {
  std::vector<std::pair<std::uint64_t, Ref>> loops;  // taken first: is_closed() runs Python
  for (const auto& kv : entries()) loops.emplace_back(kv.second.id, referent(kv.second.loop_ref));
  for (auto& [id, loop] : loops) {
    if (!loop || is_closed(loop.get())) detach(id);
  }
}

std::shared_ptr<Notifier> attach(PyObject* loop) {
  if (is_closed(loop)) throw std::runtime_error("offload: the event loop is closed");
  sweep();
  auto& map = entries();
  if (auto it = map.find(loop); it != map.end()) return it->second.notifier;  // attached meanwhile
  const std::uint64_t id = next_id++;
  Ref id_obj = Ref::steal(PyLong_FromUnsignedLongLong(id));
  Ref forget = id_obj ? Ref::steal(PyCFunction_NewEx(&forget_def, id_obj.get(), nullptr)) : Ref();
  if (!forget) throw pyb::error_already_set();
  Ref loop_ref = Ref::steal(PyWeakref_NewRef(loop, forget.get()));
  if (!loop_ref) {  // a loop type without weak references: kept until found closed
    PyErr_Clear();
    loop_ref = Ref::borrow(loop);
  }
  auto notifier = std::make_shared<Notifier>();
  Ref reader = new_reader(notifier, id, true);
  // In the map before add_reader runs (Python): a call that re-enters meanwhile finds it.
  {
    Entry& entry = map[loop];
    entry.id = id;
    entry.loop_ref = std::move(loop_ref);
    entry.notifier = notifier;
  }
  Ref added = Ref::steal(PyObject_CallMethod(loop, "add_reader", "iO", notifier->fd(), reader.get()));
  if (added) return notifier;
  // Refused: the loop does not hold the reader, so releasing it below means nothing.
  reinterpret_cast<LoopReader*>(reader.get())->detach_when_released = false;
  if (!PyErr_ExceptionMatches(PyExc_NotImplementedError)) {
    Ref error = fetch_error();
    if (auto it = map.find(loop); it != map.end() && it->second.id == id) map.erase(it);
    restore_error(error.get());
    throw pyb::error_already_set();
  }
  // A loop that cannot watch a file descriptor: the notifier wakes it with one
  // call_soon_threadsafe of a reader per burst (that reader's release means nothing).
  PyErr_Clear();
  auto scheduled = std::make_shared<Ref>();  // the reader to schedule, set just below
  auto target = std::make_shared<Ref>(weak_or_strong(loop));
  auto woken = std::make_shared<Notifier>([target, scheduled] {
    GilScope gil;
    if (!gil.acquired()) return;
    Ref where = referent(*target);
    if (!where || !*scheduled) return;
    Ref r = Ref::steal(PyObject_CallMethod(where.get(), "call_soon_threadsafe", "O", scheduled->get()));
    if (!r) PyErr_Clear();  // closed: the weak reference, or the next attach's sweep, detaches it
  });
  *scheduled = new_reader(woken, id, false);
  if (auto it = map.find(loop); it != map.end() && it->second.id == id) it->second.notifier = woken;
  notifier->close();
  return woken;
}

}  // namespace

std::shared_ptr<Notifier> notifier_for(PyObject* loop) {
  auto& map = entries();
  if (auto it = map.find(loop); it != map.end()) return it->second.notifier;
  return attach(loop);
}

std::shared_ptr<Notifier> registered_notifier(PyObject* loop) {
  auto& map = entries();
  auto it = map.find(loop);
  return it == map.end() ? nullptr : it->second.notifier;
}

void watch(PyObject* loop, std::weak_ptr<LoopBound> bound) {
  auto& map = entries();
  auto it = map.find(loop);
  if (it == map.end()) return;
  Entry& entry = it->second;
  // Drop the watchers that are gone once the list has doubled since the last time.
  if (entry.watchers.size() >= 2 * entry.watchers_live + 16) {
    entry.watchers.erase(std::remove_if(entry.watchers.begin(), entry.watchers.end(),
                                        [](const auto& w) { return w.expired(); }),
                         entry.watchers.end());
    entry.watchers_live = entry.watchers.size();
  }
  entry.watchers.push_back(std::move(bound));
}

void bind_loop_registry(pyb::module_& m) {
  reader_type = make_reader_type();
  if (reader_type == nullptr) throw pyb::error_already_set();
  m.def("notifier_for", [](pyb::object loop) { return notifier_for(loop.ptr()); }, pyb::arg("loop"));
  m.def("registered_notifier", [](pyb::object loop) { return registered_notifier(loop.ptr()); },
        pyb::arg("loop"));
  m.def("attached_loops", [] { return entries().size(); });
  m.def("forget_loops_after_fork", [] {
    // The notifiers' locks may be held by threads that did not survive the fork: abandoned
    // without being touched (leaked, never freed).
    new std::unordered_map<PyObject*, Entry>(std::move(entries()));
    entries().clear();
  });
}

}  // namespace offload::py
