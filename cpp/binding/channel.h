// offload._core.Channel: a core Channel<Ref> (offload/channel.h) shared with the loop waiters
// that use it, behind offload.Channel. A pybind11 class for everything but the per-item
// operations: offload.Channel binds raw fast functions to it (channel_fast.h), whose awaitables
// (channel_awaitable.h) and blocking calls use try_offer / try_poll below directly.
//
// Python's gc sees the items a channel holds (collectable.h), so that an item referencing its
// channel (an actor and its inbox) is collected with it, as with asyncio.Queue.

#ifndef OFFLOAD_BINDING_CHANNEL_H_
#define OFFLOAD_BINDING_CHANNEL_H_

#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <optional>

#include "channel_ops.h"
#include "offload/notifier.h"
#include "package.h"

namespace offload::py {

class PyChannel {
 public:
  explicit PyChannel(std::optional<std::size_t> capacity);

  // Nothing in Python can reach the channel any more; waiters of dead loops may still hold
  // the core: closing wakes (and so releases) them.
  ~PyChannel() { core_->close(); }

  // 1 when sent, 0 when it would block, -1 with ChannelClosed set. GIL held.
  int try_offer(PyObject* item) {
    Ref ref = Ref::borrow(item);
    switch (core_->try_send(std::move(ref))) {
      case ChannelStatus::kOk:
        return 1;
      case ChannelStatus::kClosed:
        set_channel_closed();
        return -1;
      default:
        return 0;  // `ref` still holds the item: released here, with the GIL
    }
  }

  // A new reference to the next item, a new reference to the package's channel_empty marker
  // when it would block, or null with ChannelClosed set. GIL held.
  PyObject* try_poll() {
    Ref item;
    switch (core_->try_recv(&item)) {
      case ChannelStatus::kOk:
        return item.release();
      case ChannelStatus::kClosed:
        set_channel_closed();
        return nullptr;
      default:
        return new_ref(package().channel_empty);
    }
  }

  // Thread-blocking operations (GIL released while waiting; `timeout` None or seconds).
  void send_blocking(const pybind11::handle& item, const pybind11::handle& timeout);
  pybind11::object recv_blocking(const pybind11::handle& timeout);

  // A coroutine's wait (loop_waiter.h); `pins` as there.
  pybind11::object send_waiter(const pybind11::handle& item, std::shared_ptr<Notifier> notifier,
                               const pybind11::object& future, const pybind11::tuple& pins);
  pybind11::object recv_waiter(std::shared_ptr<Notifier> notifier, const pybind11::object& future,
                               const pybind11::tuple& pins);

  void close() { core_->close(); }
  bool closed() const { return core_->closed(); }
  std::size_t size() const { return core_->size(); }
  std::optional<std::size_t> capacity() const;
  pybind11::dict stats() const;

  const std::shared_ptr<CoreChannel>& core() const { return core_; }

  // For Python's gc (collectable.h): visits every item the core holds, the items of queued
  // sends included (see channel.cc for why that is sound).
  int traverse(visitproc visit, void* arg) const;

  // Garbage: closes the core (a later operation sees a closed channel) and drops the buffered
  // items, after the core's lock is released (dropping one may run __del__). Queued senders,
  // which a close wakes, keep their items.
  void clear();

 private:
  std::shared_ptr<CoreChannel> core_;
};

// Adds Channel and channel_closed_error to the module.
void bind_channel(pybind11::module_& m);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_CHANNEL_H_
