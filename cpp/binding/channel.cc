#include "channel.h"

#include <pybind11/stl.h>

#include <deque>
#include <utility>
#include <vector>

#include "channel_fast.h"
#include "collectable.h"
#include "loop_waiter.h"

namespace pyb = pybind11;

namespace offload::py {

using internal::Waiter;

PyChannel::PyChannel(std::optional<std::size_t> capacity)
    : core_(std::make_shared<CoreChannel>(capacity ? *capacity : CoreChannel::kUnbounded)) {
  require_connected();  // its errors and markers are the package's
}

void PyChannel::send_blocking(const pyb::handle& item, const pyb::handle& timeout) {
  CoreOp op;
  op.channel = core_.get();
  op.is_send = true;
  op.item.emplace(Ref::borrow(item.ptr()));
  const int done = wait_blocking(&op, 1, timeout);
  if (done == Waiter::kAborted) raise_timeout("send");
  if (op.closed) raise_channel_closed();
}

pyb::object PyChannel::recv_blocking(const pyb::handle& timeout) {
  CoreOp op;
  op.channel = core_.get();
  const int done = wait_blocking(&op, 1, timeout);
  if (done == Waiter::kAborted) raise_timeout("recv");
  if (op.closed) raise_channel_closed();
  return take_item(op);
}

pyb::object PyChannel::send_waiter(const pyb::handle& item, std::shared_ptr<Notifier> notifier,
                                   const pyb::object& future, const pyb::tuple& pins) {
  std::vector<Ref> items;
  items.push_back(Ref::borrow(item.ptr()));
  return start_loop_waiter({core_}, std::move(items), std::move(notifier), future, pins);
}

pyb::object PyChannel::recv_waiter(std::shared_ptr<Notifier> notifier, const pyb::object& future,
                                   const pyb::tuple& pins) {
  std::vector<Ref> items;
  items.push_back(Ref::borrow(package().channel_recv));
  return start_loop_waiter({core_}, std::move(items), std::move(notifier), future, pins);
}

std::optional<std::size_t> PyChannel::capacity() const {
  if (core_->capacity() == CoreChannel::kUnbounded) return std::nullopt;
  return core_->capacity();
}

pyb::dict PyChannel::stats() const {
  CoreChannel::Stats s = core_->stats();
  pyb::dict d;
  d["buffered"] = s.buffered;
  d["waiting_senders"] = s.waiting_senders;
  d["waiting_receivers"] = s.waiting_receivers;
  d["sent"] = s.sent;
  d["received"] = s.received;
  return d;
}

// The items of queued sends are visited too, though their senders own them: a coroutine
// blocked in send() on a channel that only it references, with an item referencing the
// coroutine or the channel, is then collected as asyncio.Queue's blocked put() is. This is
// sound because a party stays queued only while it references this object: a thread from its
// stack (a gc root, so the channel is reachable and its items rightly counted as such), a
// coroutine from its frame (so when the channel is garbage, so is the coroutine, and finalizing
// it withdraws the send before anything is cleared). Each item is held by one operation on one
// channel, so no reference is visited twice.
int PyChannel::traverse(visitproc visit, void* arg) const {
  return core_->for_each_item([&](const Ref& item) {
    Py_VISIT(item.get());  // never runs Python or drops a reference: fine under the core lock
    return 0;
  });
}

void PyChannel::clear() {
  std::deque<Ref> items = core_->close_and_take_buffered();
  items.clear();
}

void bind_channel(pyb::module_& m) {
  // dynamic_attr: offload._channel keeps the set of futures waiting on the channel in it,
  // where Python's gc can see it (see _pin_waiting there).
  pyb::class_<PyChannel>(m, "Channel", pyb::dynamic_attr(), collectable<PyChannel>())
      .def(pyb::init<std::optional<std::size_t>>(), pyb::arg("capacity"))
      .def("bind",
           [](pyb::object self) { return bind_fast_path(self.cast<PyChannel*>(), self); })
      .def("send_waiter",
           [](pyb::object self, const pyb::object& item, std::shared_ptr<Notifier> notifier,
              const pyb::object& future) {
             return self.cast<PyChannel&>().send_waiter(item, std::move(notifier), future,
                                                        pyb::make_tuple(self));
           })
      .def("recv_waiter",
           [](pyb::object self, std::shared_ptr<Notifier> notifier, const pyb::object& future) {
             return self.cast<PyChannel&>().recv_waiter(std::move(notifier), future,
                                                        pyb::make_tuple(self));
           })
      .def("close", &PyChannel::close)
      .def_property_readonly("closed", &PyChannel::closed)
      .def_property_readonly("capacity", &PyChannel::capacity)
      .def("__len__", &PyChannel::size)
      .def("stats", &PyChannel::stats);

  m.def("channel_closed_error", [] {
    set_channel_closed();
    return pyb::reinterpret_steal<pyb::object>(fetch_error().release());
  }, "The ChannelClosed error every operation on a closed channel raises (a new instance).");
}

}  // namespace offload::py
