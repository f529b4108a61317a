#include "channels.h"

#include <pybind11/stl.h>

#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "collectable.h"
#include "loop_registry.h"
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
  // The slow paths, coroutine functions of the core channel: recv_wait(core),
  // send_wait(core, item), anext_wait(core) (like recv_wait, StopAsyncIteration when closed).
  PyObject* recv_wait = nullptr;
  PyObject* send_wait = nullptr;
  PyObject* anext_wait = nullptr;
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
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
      PyErr_Clear();
      throw pyb::value_error("offload: timeout is too large");
    }
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
  WaitEnd end = WaitEnd::kReady;
  const int done = Engine::wait(
      ops, n, deadline_after(seconds ? &*seconds : nullptr),
      [&](internal::ThreadWaiter& waiter, absl::Time deadline) {
        end = wait_without_gil([&](absl::Time t) { return waiter.wait_until(t); }, deadline);
        return end == WaitEnd::kReady;
      },
      [](internal::ThreadWaiter& waiter) {
        Py_BEGIN_ALLOW_THREADS
        waiter.wait();  // the claimer may need the GIL to reach its wake-up
        Py_END_ALLOW_THREADS
      });
  if (end == WaitEnd::kSignal) {
    if (done >= 0) give_back_received(ops[done]);
    throw pyb::error_already_set();
  }
  return done;
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
// are queued, and the wake-up task keeps it alive until the loop ran it.
//
// Nobody resumes the coroutine if its future is gone or its loop closed: the claimer then
// orphans the waiter at once (its ops are withdrawn, a received item goes on to the next
// receiver), and so does a wake-up task the notifier refuses or drops. A waiter still queued
// when its loop goes away is withdrawn by the loop registry (loop_gone): it takes nothing.
//
// The future is held weakly; while queued, the waiter pins it on the channels it waits on (the
// set each Python channel keeps for that, where Python's gc sees it), so a fire-and-forget
// consumer is not collected while it waits, and a coroutine abandoned on a dead loop stays
// collectable with its channel. The pins go when the coroutine resumes (offload._channel), and
// when the waiter is orphaned or withdrawn here (a coroutine of a dead loop never resumes):
// nothing keeps a dead loop alive.

class LoopWaiter final : public Waiter,
                         public LoopBound,
                         public std::enable_shared_from_this<LoopWaiter> {
 public:
  LoopWaiter(std::vector<std::shared_ptr<Core>> channels, std::vector<Ref> items,
             std::shared_ptr<Notifier> notifier, PyObject* future, std::vector<Ref> pins)
      : channels_(std::move(channels)),
        ops_(core_ops(channels_, items)),
        notifier_(std::move(notifier)),
        future_(weak_or_strong(future)),
        pins_(std::move(pins)),
        loop_(running_loop()) {}

  // Queues the ops, or completes the future at once when one can happen now. GIL held, on the
  // loop's thread.
  void start() {
    self_ = shared_from_this();  // before the ops are visible to claimers
    const int done = Engine::start(ops_.data(), size(), this);
    if (done == kWaiting) {
      pin();
      if (loop_ != nullptr) watch(loop_, weak_from_this());
      return;
    }
    self_.reset();
    claim(done);  // nobody else can: nothing was queued
    complete_future();
  }

  void wake() override {
    std::shared_ptr<LoopWaiter> self = std::move(self_);
    if (holds_gil()) {
      if (!awaited()) {
        orphan_now_or_later(std::move(self));  // nobody will resume: pass an item on
        return;
      }
      // The claimer runs on this very loop (it may have moved to another thread since the wait
      // began, so ask which loop runs here now): complete now, no round trip. Comparing
      // identities is safe: the future, while it exists, keeps its loop alive.
      if (loop_ != nullptr && running_loop() == loop_) {
        on_loop();
        return;
      }
    }
    (void)notifier_->add(Wake{std::move(self)});  // refused: Wake's destructor orphans it
  }

  // The loop closed or was collected while the ops were queued: withdraw them (nothing
  // happens). If one was claimed meanwhile, its wake-up orphans the waiter. GIL held.
  void loop_gone() override {
    if (!abort()) return;
    Engine::finish(ops_.data(), size());
    self_.reset();
    release_pins();
  }

  // The coroutine was interrupted (cancelled, timed out, closed). True when no operation had
  // happened and none will; false when one did (take() tells which). GIL held.
  bool withdraw() {
    const bool aborted = abort() || state() == kAborted;
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
      if (waiter) orphan_now_or_later(std::move(waiter));
    }
    void operator()() && { std::exchange(waiter, nullptr)->on_loop(); }
  };

  int size() const { return static_cast<int>(ops_.size()); }
  std::size_t won() const {
    if (state() < 0) throw std::logic_error("offload: no channel operation happened");
    return static_cast<std::size_t>(state());
  }

  // Whether a coroutine still awaits this waiter on an open loop. GIL held.
  bool awaited() const {
    if (notifier_->closed()) return false;  // the registry detached its loop
    Ref future = referent(future_);
    if (!future) return false;
    if (loop_ == nullptr) return true;
    // The future keeps its loop alive, so `loop_` may be used while `future` is held.
    Ref closed = Ref::steal(PyObject_CallMethod(loop_, "is_closed", nullptr));
    if (!closed) {
      PyErr_Clear();
      return true;
    }
    return closed.get() != Py_True;
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
    if (holds_gil()) release_pins();
  }

  // Orphaning gives a received item back, which may hand it to the next dead waiter, whose
  // orphaning gives it back again, and so on through every coroutine a dead loop left
  // waiting: one thread runs such a chain as a loop, never as a recursion (60,000 dead
  // waiters would overflow the stack).
  static void orphan_now_or_later(std::shared_ptr<LoopWaiter> waiter) {
    thread_local std::deque<std::shared_ptr<LoopWaiter>>* chain = nullptr;
    if (chain != nullptr) {
      chain->push_back(std::move(waiter));
      return;
    }
    std::deque<std::shared_ptr<LoopWaiter>> pending;
    chain = &pending;
    struct Reset {
      ~Reset() { chain = nullptr; }
    } reset;
    waiter->orphan();
    waiter.reset();
    while (!pending.empty()) {
      std::shared_ptr<LoopWaiter> next = std::move(pending.front());
      pending.pop_front();
      next->orphan();
    }
  }

  // Pins the future on the channels (see above). GIL held.
  void pin() { for_each_pin([](PyObject* set, PyObject* future) { return PySet_Add(set, future); }); }

  // Unpins the future from the channels (see above). GIL held.
  void release_pins() {
    for_each_pin([](PyObject* set, PyObject* future) { return PySet_Discard(set, future); });
    pins_.clear();
  }

  // change(set, future) on the pin set of each channel still alive (its `waiting` attribute).
  template <class Change>
  void for_each_pin(Change change) {
    Ref future = referent(future_);
    if (!future) return;
    for (const Ref& channel_ref : pins_) {
      Ref channel = referent(channel_ref);
      Ref set = channel ? Ref::steal(PyObject_GetAttrString(channel.get(), "waiting")) : Ref();
      if (!set || !PySet_Check(set.get()) || change(set.get(), future.get()) < 0) PyErr_Clear();
    }
  }

  std::vector<std::shared_ptr<Core>> channels_;  // keeps every channel of ops_ alive
  std::vector<Op> ops_;                          // never resized: ops are linked by address
  std::shared_ptr<Notifier> notifier_;
  Ref future_;  // a weak reference to the future, or the future itself (weak_or_strong)
  // The Python channels (weak references: the waiter is invisible to Python's gc, so it must
  // not own anything a cycle may run through) whose `waiting` sets pin the future.
  std::vector<Ref> pins_;
  PyObject* const loop_;  // the loop that awaits (identity only), null if none was running
  std::shared_ptr<LoopWaiter> self_;  // set while queued; moved out by the claimer's wake()
};

std::shared_ptr<LoopWaiter> start_loop_waiter(std::vector<std::shared_ptr<Core>> channels,
                                              std::vector<Ref> items,
                                              std::shared_ptr<Notifier> notifier,
                                              const pyb::object& future, const pyb::tuple& pins) {
  std::vector<Ref> pin_sets;
  for (const pyb::handle& channel : pins) pin_sets.push_back(weak_or_strong(channel.ptr()));
  auto waiter = std::make_shared<LoopWaiter>(std::move(channels), std::move(items),
                                             std::move(notifier), future.ptr(), std::move(pin_sets));
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

  // 1 when sent, 0 when it would block, -1 with ChannelClosed set. GIL held.
  int try_offer(PyObject* item) {
    Ref ref = Ref::borrow(item);
    switch (core_->try_send(std::move(ref))) {
      case ChannelStatus::kOk:
        return 1;
      case ChannelStatus::kClosed:
        PyErr_SetString(types.closed_error, "offload: the channel is closed");
        return -1;
      default:
        return 0;  // `ref` still holds the item: released here, with the GIL
    }
  }

  // A new reference to the next item, a new reference to the `empty` marker when it would
  // block, or null with ChannelClosed set. GIL held.
  PyObject* try_poll() {
    Ref item;
    switch (core_->try_recv(&item)) {
      case ChannelStatus::kOk:
        return item.release();
      case ChannelStatus::kClosed:
        PyErr_SetString(types.closed_error, "offload: the channel is closed");
        return nullptr;
      default:
        return new_ref(types.empty);
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
                                          const pyb::object& future, const pyb::tuple& pins) {
    std::vector<Ref> items;
    items.push_back(Ref::borrow(item.ptr()));
    return start_loop_waiter({core_}, std::move(items), std::move(notifier), future, pins);
  }

  std::shared_ptr<LoopWaiter> recv_waiter(std::shared_ptr<Notifier> notifier,
                                          const pyb::object& future, const pyb::tuple& pins) {
    std::vector<Ref> items;
    items.push_back(Ref::borrow(types.recv));
    return start_loop_waiter({core_}, std::move(items), std::move(notifier), future, pins);
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

  // Python's gc (collectable.h) sees the items the core holds, so that an item referencing its
  // channel (an actor and its inbox) is collected with it, as with asyncio.Queue.
  //
  // That includes the items of queued sends, which their senders own: a coroutine blocked in
  // send() on a channel that only it references, with an item referencing the coroutine or the
  // channel, is then collected as asyncio.Queue's blocked put() is. This is sound because a
  // party stays queued only while it references this object: a thread from its stack (a gc
  // root, so the channel is reachable and its items rightly counted as such), a coroutine from
  // its frame (so when the channel is garbage, so is the coroutine, and finalizing it withdraws
  // the send before anything is cleared). Each item is held by one operation on one channel,
  // so no reference is visited twice.
  int traverse(visitproc visit, void* arg) const {
    return core_->for_each_item([&](const Ref& item) {
      Py_VISIT(item.get());  // never runs Python or drops a reference: fine under the core lock
      return 0;
    });
  }

  // Garbage: closes the core (a later operation sees a closed channel) and drops the buffered
  // items, after the core's lock is released (dropping one may run __del__). Queued senders,
  // which a close wakes, keep their items.
  void clear() {
    std::deque<Ref> items = core_->close_and_take_buffered();
    items.clear();
  }

 private:
  std::shared_ptr<Core> core_;
};

// ---------------------------------------------------------------------------------------------
// The hot path. Each Python Channel binds raw CPython functions to its core channel (no
// pybind11 dispatch, no Python frame): the blocking and nowait operations, and recv(), send()
// and __anext__, which return a ChannelAwaitable.
//
// ChannelAwaitable behaves as the coroutine it stands for: it does nothing until it is first
// stepped (awaited, or run by a Task). Then it tries the operation at once and, when that
// works, returns its result without a Python frame, a future or a loop round trip. Otherwise it
// starts the slow path — the Python coroutine recv_wait / send_wait / anext_wait of
// offload._channel — and delegates every step, throw() and close() to it, so waiting,
// cancellation and close follow that coroutine's semantics exactly. It is registered as a
// collections.abc.Coroutine, so asyncio.create_task() and wait_for() accept it.

struct Bound {
  PyChannel* channel;
  PyObject* owner;  // the _core.Channel object, a strong reference
};

// The `self` of the bound functions: a Bound in an object that Python's gc traverses (unlike a
// capsule), so that its reference to the owner does not keep a garbage channel alive.
struct BoundChannel {
  PyObject_HEAD
  Bound bound;
};
PyTypeObject* bound_type = nullptr;

Bound* bound_of(PyObject* self) { return &reinterpret_cast<BoundChannel*>(self)->bound; }

enum AwaitKind { kAwaitRecv, kAwaitSend, kAwaitNext };
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
const char* const kAwaitNames[] = {"recv", "send", "__anext__"};

// Ends the delegation to `inner` if it is still the current one.
void drop_inner(ChannelAwaitable* self, PyObject* inner) {
  self->state = kDone;
  if (self->inner == inner) Py_CLEAR(self->inner);
}

bool check_args(const char* name, Py_ssize_t nargs, Py_ssize_t expected, PyObject* kwnames) {
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
    PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", name);
    return false;
  }
  if (nargs != expected) {
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s but %zd were given", name,
                 expected, expected == 1 ? "" : "s", nargs);
    return false;
  }
  return true;
}

PyObject* new_awaitable(const Bound& bound, int kind, PyObject* item) {
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

enum class Step { kYield, kReturn, kError };

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

Step step(ChannelAwaitable* self, PyObject* arg, PyObject** out) {
  *out = nullptr;
  RunningScope<ChannelAwaitable> running(self);
  if (!running.entered()) return Step::kError;
  if (self->state == kDelegating) return delegate(self, arg, out);
  if (self->state == kDone) {
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
    return Step::kError;
  }
  if (arg != Py_None) {
    PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
    return Step::kError;
  }
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
    slow = PyObject_CallFunctionObjArgs(types.send_wait, self->bound.owner, self->item, nullptr);
    Py_CLEAR(self->item);
  } else {
    PyObject* item = ch.try_poll();
    if (item != types.empty) {
      self->state = kDone;
      if (item == nullptr && self->kind == kAwaitNext &&
          PyErr_ExceptionMatches(types.closed_error)) {
        PyErr_SetNone(PyExc_StopAsyncIteration);
      }
      *out = item;
      return item == nullptr ? Step::kError : Step::kReturn;
    }
    Py_DECREF(item);
    slow = PyObject_CallOneArg(self->kind == kAwaitRecv ? types.recv_wait : types.anext_wait,
                               self->bound.owner);
  }
  if (slow == nullptr) {
    self->state = kDone;
    return Step::kError;
  }
  self->inner = slow;
  self->state = kDelegating;
  return delegate(self, Py_None, out);
}

// The iterator protocol: a yielded value, or null with StopIteration(result) or an error.
PyObject* step_as_iterator(ChannelAwaitable* self, PyObject* arg) {
  PyObject* out;
  switch (step(self, arg, &out)) {
    case Step::kYield:
      return out;
    case Step::kReturn:
      set_stop_iteration(out);
      Py_DECREF(out);
      return nullptr;
    default:
      return nullptr;
  }
}

PyObject* awaitable_iternext(PyObject* self) {
  return step_as_iterator(reinterpret_cast<ChannelAwaitable*>(self), Py_None);
}

PyObject* awaitable_send(PyObject* self, PyObject* arg) {
  return step_as_iterator(reinterpret_cast<ChannelAwaitable*>(self), arg);
}

#if PY_VERSION_HEX >= 0x030A0000
PySendResult awaitable_am_send(PyObject* self, PyObject* arg, PyObject** out) {
  switch (step(reinterpret_cast<ChannelAwaitable*>(self), arg, out)) {
    case Step::kYield:
      return PYGEN_NEXT;
    case Step::kReturn:
      return PYGEN_RETURN;
    default:
      return PYGEN_ERROR;
  }
}
#endif

// throw(exc) / throw(type[, value[, traceback]]): into the slow path if it runs; otherwise the
// operation never started (or is over) and the exception is raised as it is.
PyObject* awaitable_throw(PyObject* op, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<ChannelAwaitable*>(op);
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
  auto* self = reinterpret_cast<ChannelAwaitable*>(op);
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
  auto* self = reinterpret_cast<ChannelAwaitable*>(op);
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->bound.owner);
  Py_VISIT(self->item);
  Py_VISIT(self->inner);
  return 0;
}

int awaitable_clear(PyObject* op) {
  auto* self = reinterpret_cast<ChannelAwaitable*>(op);
  Py_CLEAR(self->bound.owner);
  Py_CLEAR(self->item);
  Py_CLEAR(self->inner);
  return 0;
}

// Like a coroutine, one that was never awaited says so: its operation never happened.
void awaitable_finalize(PyObject* op) {
  auto* self = reinterpret_cast<ChannelAwaitable*>(op);
  if (self->state != kFresh || self->bound.owner == nullptr) return;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "coroutine 'Channel.%s' was never awaited",
                       kAwaitNames[self->kind]) < 0) {
    PyErr_WriteUnraisable(op);
  }
  PyErr_Restore(type, value, traceback);
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
    {"send", awaitable_send, METH_O, "Steps the operation, as coroutine.send()."},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(awaitable_throw)),
     METH_FASTCALL, "Raises an exception into the operation, as coroutine.throw()."},
    {"close", awaitable_close, METH_NOARGS, "Closes the operation, as coroutine.close()."},
    {nullptr, nullptr, 0, nullptr},
};

#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
constexpr unsigned kNoInstances = Py_TPFLAGS_DISALLOW_INSTANTIATION;
#else
constexpr unsigned kNoInstances = 0;
#endif

PyTypeObject* make_awaitable_type() {
  static PyType_Slot slots[] = {
      {Py_am_await, reinterpret_cast<void*>(awaitable_self)},
#if PY_VERSION_HEX >= 0x030A0000
      {Py_am_send, reinterpret_cast<void*>(awaitable_am_send)},
#endif
      {Py_tp_iternext, reinterpret_cast<void*>(awaitable_iternext)},
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
  PyObject* type = PyType_FromSpec(&spec);
  if (type == nullptr) throw pyb::error_already_set();
  // Only the channel makes these (Python 3.9 has no flag for that).
  reinterpret_cast<PyTypeObject*>(type)->tp_new = nullptr;
  throw_name = PyUnicode_InternFromString("throw");
  return reinterpret_cast<PyTypeObject*>(type);
}

// -- the bound functions ----------------------------------------------------------------------

PyObject* fast_recv(PyObject* self, PyObject* const*, Py_ssize_t nargsf, PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("recv", PyVectorcall_NARGS(nargsf), 0, kwnames)) return nullptr;
  return new_awaitable(*b, kAwaitRecv, nullptr);
}

PyObject* fast_send(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                    PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("send", PyVectorcall_NARGS(nargsf), 1, kwnames)) return nullptr;
  return new_awaitable(*b, kAwaitSend, args[0]);
}

PyObject* fast_anext(PyObject* self, PyObject* const*, Py_ssize_t nargsf, PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("__anext__", PyVectorcall_NARGS(nargsf), 0, kwnames)) {
    return nullptr;
  }
  return new_awaitable(*b, kAwaitNext, nullptr);
}

PyObject* fast_send_nowait(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                           PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("send_nowait", PyVectorcall_NARGS(nargsf), 1, kwnames)) {
    return nullptr;
  }
  const int sent = b->channel->try_offer(args[0]);
  if (sent < 0) return nullptr;
  if (sent == 0) {
    PyErr_SetString(types.would_block_error, "offload: the channel is full");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* fast_recv_nowait(PyObject* self, PyObject* const*, Py_ssize_t nargsf,
                           PyObject* kwnames) {
  Bound* b = bound_of(self);
  if (!check_args("recv_nowait", PyVectorcall_NARGS(nargsf), 0, kwnames)) {
    return nullptr;
  }
  PyObject* item = b->channel->try_poll();
  if (item == types.empty) {
    Py_DECREF(item);
    PyErr_SetString(types.would_block_error, "offload: the channel is empty");
    return nullptr;
  }
  return item;
}

// (positional..., timeout=None): the timeout, positional or by keyword; null on a bad call.
bool parse_timeout(const char* name, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames,
                   Py_ssize_t required, PyObject** timeout) {
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  *timeout = Py_None;
  if (nargs < required || nargs + nkw > required + 1) {
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s and an optional timeout",
                 name, required, required == 1 ? "" : "s");
    return false;
  }
  if (nargs == required + 1) *timeout = args[required];
  if (nkw == 1) {
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout") != 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", name,
                   PyTuple_GET_ITEM(kwnames, 0));
      return false;
    }
    *timeout = args[nargs];
  }
  return true;
}

// None or a plain number that is not NaN: a timeout the fast path may ignore because the
// operation needs no wait. Anything else goes through the checked slow path, which raises for
// a bad one.
bool plain_timeout(PyObject* timeout) {
  if (timeout == Py_None) return true;
  if (PyFloat_CheckExact(timeout)) return !std::isnan(PyFloat_AS_DOUBLE(timeout));
  return PyLong_CheckExact(timeout);
}

// Runs `fn` (which may throw pybind11 or C++ exceptions) as a CPython function body.
template <class Fn>
PyObject* guarded(Fn fn) {
  try {
    return fn();
  } catch (pyb::error_already_set& e) {
    e.restore();
  } catch (const pyb::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

PyObject* fast_send_blocking(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                             PyObject* kwnames) {
  Bound* b = bound_of(self);
  PyObject* timeout;
  if (!parse_timeout("send_blocking", args, nargsf, kwnames, 1, &timeout)) {
    return nullptr;
  }
  if (plain_timeout(timeout)) {
    const int sent = b->channel->try_offer(args[0]);
    if (sent < 0) return nullptr;
    if (sent > 0) Py_RETURN_NONE;
  }
  return guarded([&] {
    b->channel->send_blocking(pyb::reinterpret_borrow<pyb::object>(args[0]),
                              pyb::reinterpret_borrow<pyb::object>(timeout));
    return new_ref(Py_None);
  });
}

PyObject* fast_recv_blocking(PyObject* self, PyObject* const* args, Py_ssize_t nargsf,
                             PyObject* kwnames) {
  Bound* b = bound_of(self);
  PyObject* timeout;
  if (!parse_timeout("recv_blocking", args, nargsf, kwnames, 0, &timeout)) {
    return nullptr;
  }
  if (plain_timeout(timeout)) {
    PyObject* item = b->channel->try_poll();
    if (item != types.empty) return item;  // or null: closed and drained
    Py_DECREF(item);
  }
  return guarded([&] {
    return b->channel->recv_blocking(pyb::reinterpret_borrow<pyb::object>(timeout)).release().ptr();
  });
}

#define OFFLOAD_FASTCALL(fn) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(fn))
PyMethodDef fast_defs[] = {
    {"recv", OFFLOAD_FASTCALL(fast_recv), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"send", OFFLOAD_FASTCALL(fast_send), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"__anext__", OFFLOAD_FASTCALL(fast_anext), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"send_nowait", OFFLOAD_FASTCALL(fast_send_nowait), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"recv_nowait", OFFLOAD_FASTCALL(fast_recv_nowait), METH_FASTCALL | METH_KEYWORDS, nullptr},
    {"send_blocking", OFFLOAD_FASTCALL(fast_send_blocking), METH_FASTCALL | METH_KEYWORDS,
     nullptr},
    {"recv_blocking", OFFLOAD_FASTCALL(fast_recv_blocking), METH_FASTCALL | METH_KEYWORDS,
     nullptr},
};
#undef OFFLOAD_FASTCALL

// BoundChannel has no tp_clear: it keeps its owner until it is freed, so that `channel` stays
// valid for any bound function still called from the same garbage; the gc breaks the cycle
// elsewhere (the channel's items, a __dict__).
int bound_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(bound_of(self)->owner);
  return 0;
}

void bound_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  Py_DECREF(bound_of(self)->owner);
  PyObject_GC_Del(self);
  Py_DECREF(type);
}

PyTypeObject* make_bound_type() {
  static PyType_Slot slots[] = {
      {Py_tp_traverse, reinterpret_cast<void*>(bound_traverse)},
      {Py_tp_dealloc, reinterpret_cast<void*>(bound_dealloc)},
      {Py_tp_doc, const_cast<char*>("A channel as its bound native functions see it.")},
      {0, nullptr},
  };
  static PyType_Spec spec = {"offload._core.BoundChannel", sizeof(BoundChannel), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | kNoInstances, slots};
  PyObject* type = PyType_FromSpec(&spec);
  if (type == nullptr) throw pyb::error_already_set();
  reinterpret_cast<PyTypeObject*>(type)->tp_new = nullptr;  // only bind_fast_path makes them
  return reinterpret_cast<PyTypeObject*>(type);
}

// {name: function} for the Python Channel to bind as its instance attributes.
pyb::dict bind_fast_path(PyChannel* channel, const pyb::object& owner) {
  BoundChannel* bound = PyObject_GC_New(BoundChannel, bound_type);
  if (bound == nullptr) throw pyb::error_already_set();
  bound->bound = Bound{channel, new_ref(owner.ptr())};
  PyObject_GC_Track(bound);
  pyb::object self = pyb::reinterpret_steal<pyb::object>(reinterpret_cast<PyObject*>(bound));
  pyb::dict functions;
  for (PyMethodDef& def : fast_defs) {
    PyObject* fn = PyCFunction_NewEx(&def, self.ptr(), nullptr);
    if (fn == nullptr) throw pyb::error_already_set();
    functions[def.ml_name] = pyb::reinterpret_steal<pyb::object>(fn);
  }
  return functions;
}

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

  m.def("select_waiter",
        [](const std::vector<PyChannel*>& channels, const pyb::list& items,
           std::shared_ptr<Notifier> notifier, const pyb::object& future, const pyb::tuple& pins) {
          // `pins`: the distinct Python channels of the select, each pinning the future once.
          SelectOps ops = select_ops(channels, items);
          return start_loop_waiter(std::move(ops.channels), std::move(ops.items),
                                   std::move(notifier), future, pins);
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
                                pyb::object empty, pyb::object recv, pyb::object recv_wait,
                                pyb::object send_wait, pyb::object anext_wait) {
    types = ChannelTypes{
        closed_error.release().ptr(), would_block_error.release().ptr(), empty.release().ptr(),
        recv.release().ptr(),
        pyb::object(pyb::module_::import("asyncio").attr("_get_running_loop")).release().ptr(),
        recv_wait.release().ptr(), send_wait.release().ptr(), anext_wait.release().ptr()};
  });
  awaitable_type = make_awaitable_type();
  bound_type = make_bound_type();
  m.add_object("ChannelAwaitable", pyb::handle(reinterpret_cast<PyObject*>(awaitable_type)));
}

}  // namespace offload::py
