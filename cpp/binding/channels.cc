#include "channels.h"

#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "offload/channel.h"
#include "offload/notifier.h"
#include "python_runtime.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

using Core = Channel<Ref>;
using Op = internal::ChannelOp<Ref>;
using Engine = internal::SelectEngine<Ref>;
using internal::Waiter;

// Set once by offload._channel at import; never released.
struct ChannelTypes {
  PyObject* closed_error = nullptr;       // offload.ChannelClosed
  PyObject* would_block_error = nullptr;  // offload.WouldBlock
  PyObject* empty = nullptr;              // returned by poll() when nothing is buffered
  PyObject* recv = nullptr;               // the item that marks a receive in a select
  PyObject* running_loop = nullptr;       // asyncio._get_running_loop
};
ChannelTypes types;

[[noreturn]] void raise_closed() {
  PyErr_SetString(types.closed_error, "offload: the channel is closed");
  throw pyb::error_already_set();
}

[[noreturn]] void raise_timeout(const char* what) {
  PyErr_Format(PyExc_TimeoutError, "offload: %s timed out", what);
  throw pyb::error_already_set();
}

// The running loop of this thread (borrowed identity, never dereferenced), or null. GIL held.
PyObject* running_loop() {
  PyObject* loop = PyObject_CallNoArgs(types.running_loop);
  if (loop == nullptr) {
    PyErr_Clear();
    return nullptr;
  }
  Py_DECREF(loop);  // only its identity is used; the caller's future keeps the loop alive
  return loop == Py_None ? nullptr : loop;
}

std::optional<double> checked_timeout(const pyb::object& timeout) {
  if (timeout.is_none()) return std::nullopt;
  if (PyBool_Check(timeout.ptr())) throw pyb::type_error("offload: timeout must be a number or None, got bool");
  const double seconds = PyFloat_AsDouble(timeout.ptr());
  if (seconds == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw pyb::type_error("offload: timeout must be a number or None, got " +
                          std::string(Py_TYPE(timeout.ptr())->tp_name));
  }
  if (seconds != seconds) throw pyb::value_error("offload: timeout must not be NaN");
  return seconds;
}

// The operation's item, handed to Python (None when there is none).
pyb::object take_item(Op& op) {
  if (!op.item || !*op.item) return pyb::none();
  pyb::object item = pyb::reinterpret_steal<pyb::object>(op.item->release());
  op.item.reset();
  return item;
}

// An item received by an operation whose receiver gave up goes back to its channel.
void give_back_received(Op& op) {
  if (op.is_send || op.closed || !op.item) return;
  op.channel->give_back(std::move(*op.item));
  op.item.reset();
}

// Blocks this thread until one of `ops` happens: its index, or Waiter::kAborted at the
// deadline. GIL held on entry and exit, released while waiting. A signal handler that raises
// (Ctrl-C) withdraws the operations; if one happened at that instant, a received item goes back.
int wait_blocking(Op* ops, int n, const pyb::object& timeout) {
  const std::optional<double> seconds = checked_timeout(timeout);
  const absl::Time deadline = deadline_after(seconds ? &*seconds : nullptr);
  if (deadline <= absl::Now()) {
    const int done = Engine::start(ops, n, nullptr);
    return done == Waiter::kWaiting ? Waiter::kAborted : done;
  }
  internal::ThreadWaiter waiter;
  const int done = Engine::start(ops, n, &waiter);
  if (done != Waiter::kWaiting) return done;
  const WaitEnd end =
      wait_without_gil([&](absl::Time t) { return waiter.wait_until(t); }, deadline);
  if (end != WaitEnd::kReady) {
    if (waiter.abort()) {
      Engine::finish(ops, n);
      if (end == WaitEnd::kSignal) throw pyb::error_already_set();
      return Waiter::kAborted;
    }
    Py_BEGIN_ALLOW_THREADS
    waiter.wait();  // claimed at the last moment: the claimer is about to wake us
    Py_END_ALLOW_THREADS
  }
  Engine::finish(ops, n);
  if (end == WaitEnd::kSignal) {
    give_back_received(ops[waiter.state()]);
    throw pyb::error_already_set();
  }
  return waiter.state();
}

// The core operations for (channel, item) pairs: the `recv` marker as the item makes a receive.
std::vector<Op> core_ops(const std::vector<std::shared_ptr<Core>>& channels,
                         std::vector<Ref>& items) {
  std::vector<Op> ops(channels.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    ops[i].channel = channels[i].get();
    if (items[i].get() != types.recv) {
      ops[i].is_send = true;
      ops[i].item.emplace(std::move(items[i]));
    }
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// LoopWaiter: a coroutine's wait on one or several operations (see channels.h).
//
// Ownership: Python holds it while the coroutine awaits; `self_` keeps it alive while its ops
// are queued, and the wake-up task keeps it alive until the loop ran it. A wake-up the loop
// will never run (its notifier is closed: the loop is gone) orphans the waiter: its ops are
// withdrawn and a received item goes back to its channel.
//
// The future is held through a weak reference where the future type allows it: a queued
// waiter must not keep its coroutine alive. A coroutine abandoned on a dead loop is then
// collected by Python's gc, and closing it runs the coroutine's own withdraw path.

class LoopWaiter final : public Waiter, public std::enable_shared_from_this<LoopWaiter> {
 public:
  LoopWaiter(std::vector<std::shared_ptr<Core>> channels, std::vector<Ref> items,
             std::shared_ptr<Notifier> notifier, PyObject* future)
      : channels_(std::move(channels)),
        ops_(core_ops(channels_, items)),
        notifier_(std::move(notifier)),
        future_(weak_or_strong(future)),
        loop_(running_loop()) {}

  // Queues the ops, or completes the future at once when one can happen now. GIL held, on the
  // loop's thread.
  void start() {
    self_ = shared_from_this();  // before the ops are visible to claimers
    const int done = Engine::start(ops_.data(), size(), this);
    if (done == kWaiting) return;
    self_.reset();
    claim(done);  // nobody else can: nothing was queued
    complete_future();
  }

  void wake() override {
    std::shared_ptr<LoopWaiter> self = std::move(self_);
    // The claimer runs on this very loop (it may have moved to another thread since the wait
    // began, so ask which loop runs here now): complete now, no round trip. Comparing
    // identities is safe: the future, while it exists, keeps its loop alive.
    if (loop_ != nullptr && PyGILState_Check() && running_loop() == loop_) {
      on_loop();
      return;
    }
    (void)notifier_->add(Wake{std::move(self)});  // refused: Wake's destructor orphans it
  }

  // The coroutine was interrupted (cancelled, timed out, closed). True when no operation had
  // happened and none will; false when one did (take() tells which). GIL held.
  bool withdraw() {
    const bool aborted = abort();
    Engine::finish(ops_.data(), size());  // also makes a hand-off's writes visible here
    if (aborted) self_.reset();
    return aborted;
  }

  // Returns a received item to its channel (the receiver gave up). GIL held.
  void give_back() {
    if (state() >= 0) give_back_received(ops_[static_cast<std::size_t>(state())]);
  }

  // (index, is_send, closed) of the operation that happened.
  pyb::tuple happened() const {
    const Op& op = ops_[won()];
    return pyb::make_tuple(state(), op.is_send, op.closed);
  }

  // The item a receive got (moved out to the caller); None for a send.
  pyb::object take() { return take_item(ops_[won()]); }

 private:
  // The loop's wake-up task: runs on_loop(), or orphans the waiter if destroyed unrun.
  struct Wake {
    std::shared_ptr<LoopWaiter> waiter;
    Wake(std::shared_ptr<LoopWaiter> w) : waiter(std::move(w)) {}
    Wake(Wake&&) noexcept = default;
    Wake& operator=(Wake&&) noexcept = default;
    ~Wake() {
      if (waiter) waiter->orphan();
    }
    void operator()() && { std::exchange(waiter, nullptr)->on_loop(); }
  };

  int size() const { return static_cast<int>(ops_.size()); }
  std::size_t won() const {
    if (state() < 0) throw std::logic_error("offload: no channel operation happened");
    return static_cast<std::size_t>(state());
  }

  // On the loop's thread, GIL held.
  void on_loop() {
    Engine::finish(ops_.data(), size());
    complete_future();
  }

  void complete_future() {
    Ref future = referent(future_);
    if (!future) {  // the coroutine is gone; its withdraw path ran, this is a no-op then
      give_back();
      return;
    }
    Outcome outcome;
    outcome.value = Ref::borrow(Py_None);
    complete_loop_future(future.get(), &outcome);  // skipped if the awaiter was cancelled
  }

  void orphan() {
    Engine::finish(ops_.data(), size());
    give_back();
  }

  std::vector<std::shared_ptr<Core>> channels_;  // keeps every channel of ops_ alive
  std::vector<Op> ops_;                          // never resized: ops are linked by address
  std::shared_ptr<Notifier> notifier_;
  Ref future_;  // a weak reference to the future, or the future itself (weak_or_strong)
  PyObject* const loop_;  // the loop that awaits (identity only), null if none was running
  std::shared_ptr<LoopWaiter> self_;  // set while queued; moved out by the claimer's wake()
};

std::shared_ptr<LoopWaiter> start_loop_waiter(std::vector<std::shared_ptr<Core>> channels,
                                              std::vector<Ref> items,
                                              std::shared_ptr<Notifier> notifier,
                                              const pyb::object& future) {
  auto waiter = std::make_shared<LoopWaiter>(std::move(channels), std::move(items),
                                             std::move(notifier), future.ptr());
  waiter->start();
  return waiter;
}

// ---------------------------------------------------------------------------------------------
// Channel: a Channel<Ref> shared with the loop waiters that use it.

class PyChannel {
 public:
  explicit PyChannel(std::optional<std::size_t> capacity)
      : core_(std::make_shared<Core>(capacity ? *capacity : Core::kUnbounded)) {}

  // Nothing in Python can reach the channel any more; waiters of dead loops may still hold
  // the core: closing wakes (and so releases) them.
  ~PyChannel() { core_->close(); }

  // send_nowait: true when sent, false when it would block.
  bool offer(const pyb::object& item) {
    Ref ref = Ref::borrow(item.ptr());
    switch (core_->try_send(std::move(ref))) {
      case ChannelStatus::kOk:
        return true;
      case ChannelStatus::kClosed:
        raise_closed();
      default:
        return false;
    }
  }

  // recv_nowait: the item, or the `empty` marker when it would block.
  pyb::object poll() {
    Ref item;
    switch (core_->try_recv(&item)) {
      case ChannelStatus::kOk:
        return pyb::reinterpret_steal<pyb::object>(item.release());
      case ChannelStatus::kClosed:
        raise_closed();
      default:
        return pyb::reinterpret_borrow<pyb::object>(types.empty);
    }
  }

  void send_blocking(const pyb::object& item, const pyb::object& timeout) {
    Op op;
    op.channel = core_.get();
    op.is_send = true;
    op.item.emplace(Ref::borrow(item.ptr()));
    const int done = wait_blocking(&op, 1, timeout);
    if (done == Waiter::kAborted) raise_timeout("send");
    if (op.closed) raise_closed();
  }

  pyb::object recv_blocking(const pyb::object& timeout) {
    Op op;
    op.channel = core_.get();
    const int done = wait_blocking(&op, 1, timeout);
    if (done == Waiter::kAborted) raise_timeout("recv");
    if (op.closed) raise_closed();
    return take_item(op);
  }

  std::shared_ptr<LoopWaiter> send_waiter(const pyb::object& item,
                                          std::shared_ptr<Notifier> notifier,
                                          const pyb::object& future) {
    std::vector<Ref> items;
    items.push_back(Ref::borrow(item.ptr()));
    return start_loop_waiter({core_}, std::move(items), std::move(notifier), future);
  }

  std::shared_ptr<LoopWaiter> recv_waiter(std::shared_ptr<Notifier> notifier,
                                          const pyb::object& future) {
    std::vector<Ref> items;
    items.push_back(Ref::borrow(types.recv));
    return start_loop_waiter({core_}, std::move(items), std::move(notifier), future);
  }

  void close() { core_->close(); }
  bool closed() const { return core_->closed(); }
  std::size_t size() const { return core_->size(); }
  std::optional<std::size_t> capacity() const {
    if (core_->capacity() == Core::kUnbounded) return std::nullopt;
    return core_->capacity();
  }

  pyb::dict stats() const {
    Core::Stats s = core_->stats();
    pyb::dict d;
    d["buffered"] = s.buffered;
    d["waiting_senders"] = s.waiting_senders;
    d["waiting_receivers"] = s.waiting_receivers;
    d["sent"] = s.sent;
    d["received"] = s.received;
    return d;
  }

  const std::shared_ptr<Core>& core() const { return core_; }

 private:
  std::shared_ptr<Core> core_;
};

// ---------------------------------------------------------------------------------------------
// Select over several channels. An operation is (channel, item); the `recv` marker as the item
// makes it a receive.

struct SelectOps {
  std::vector<std::shared_ptr<Core>> channels;
  std::vector<Ref> items;
};

SelectOps select_ops(const std::vector<PyChannel*>& channels, const pyb::list& items) {
  if (channels.empty()) throw pyb::value_error("offload: select() needs at least one operation");
  if (channels.size() != items.size()) throw std::logic_error("offload: select ops mismatch");
  SelectOps ops;
  for (std::size_t i = 0; i < channels.size(); ++i) {
    ops.channels.push_back(channels[i]->core());
    ops.items.push_back(Ref::borrow(pyb::handle(items[i]).ptr()));
  }
  return ops;
}

// (index, item, closed), or None when nothing happened.
pyb::object select_outcome(std::vector<Op>& ops, int done) {
  if (done < 0) return pyb::none();
  Op& op = ops[static_cast<std::size_t>(done)];
  pyb::object item = op.is_send ? pyb::none() : take_item(op);
  return pyb::make_tuple(done, item, op.closed);
}

}  // namespace

void bind_channels(pyb::module_& m) {
  pyb::class_<LoopWaiter, std::shared_ptr<LoopWaiter>>(m, "LoopWaiter")
      .def("withdraw", &LoopWaiter::withdraw)
      .def("give_back", &LoopWaiter::give_back)
      .def("happened", &LoopWaiter::happened)
      .def("take", &LoopWaiter::take);

  pyb::class_<PyChannel>(m, "Channel")
      .def(pyb::init<std::optional<std::size_t>>(), pyb::arg("capacity"))
      .def("offer", &PyChannel::offer)
      .def("poll", &PyChannel::poll)
      .def("send_blocking", &PyChannel::send_blocking, pyb::arg("item"),
           pyb::arg("timeout") = pyb::none())
      .def("recv_blocking", &PyChannel::recv_blocking, pyb::arg("timeout") = pyb::none())
      .def("send_waiter", &PyChannel::send_waiter)
      .def("recv_waiter", &PyChannel::recv_waiter)
      .def("close", &PyChannel::close)
      .def_property_readonly("closed", &PyChannel::closed)
      .def_property_readonly("capacity", &PyChannel::capacity)
      .def("__len__", &PyChannel::size)
      .def("stats", &PyChannel::stats);

  m.def("select_waiter",
        [](const std::vector<PyChannel*>& channels, const pyb::list& items,
           std::shared_ptr<Notifier> notifier, const pyb::object& future) {
          SelectOps ops = select_ops(channels, items);
          return start_loop_waiter(std::move(ops.channels), std::move(ops.items),
                                   std::move(notifier), future);
        });
  m.def("select_blocking", [](const std::vector<PyChannel*>& channels, const pyb::list& items,
                              const pyb::object& timeout) {
    SelectOps spec = select_ops(channels, items);
    std::vector<Op> ops = core_ops(spec.channels, spec.items);
    const int done = wait_blocking(ops.data(), static_cast<int>(ops.size()), timeout);
    if (done == Waiter::kAborted) raise_timeout("select");
    return select_outcome(ops, done);
  });
  m.def("select_nowait", [](const std::vector<PyChannel*>& channels, const pyb::list& items) {
    SelectOps spec = select_ops(channels, items);
    std::vector<Op> ops = core_ops(spec.channels, spec.items);
    return select_outcome(ops, Engine::start(ops.data(), static_cast<int>(ops.size()), nullptr));
  });
  m.def("set_channel_types", [](pyb::object closed_error, pyb::object would_block_error,
                                pyb::object empty, pyb::object recv) {
    types = ChannelTypes{
        closed_error.release().ptr(), would_block_error.release().ptr(), empty.release().ptr(),
        recv.release().ptr(),
        pyb::object(pyb::module_::import("asyncio").attr("_get_running_loop")).release().ptr()};
  });
}

}  // namespace offload::py
