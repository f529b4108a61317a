#include "loop_waiter.h"

#include <deque>
#include <utility>

#include "loop_registry.h"

namespace pyb = pybind11;

namespace offload::py {
namespace {

using internal::Waiter;

// A coroutine's wait on one or several operations (see loop_waiter.h).
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
  LoopWaiter(std::vector<std::shared_ptr<CoreChannel>> channels, std::vector<Ref> items,
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
    const int done = CoreSelect::start(ops_.data(), size(), this);
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
    CoreSelect::finish(ops_.data(), size());
    self_.reset();
    release_pins();
  }

  // The coroutine was interrupted (cancelled, timed out, closed). True when no operation had
  // happened and none will; false when one did (take() tells which). GIL held.
  bool withdraw() {
    const bool aborted = abort() || state() == kAborted;
    CoreSelect::finish(ops_.data(), size());  // also makes a hand-off's writes visible here
    if (aborted) self_.reset();
    return aborted;
  }

  // Returns a received item to its channel (the receiver gave up). GIL held.
  void give_back() {
    if (state() >= 0) give_back_received(ops_[static_cast<std::size_t>(state())]);
  }

  // (index, is_send, closed) of the operation that happened.
  pyb::tuple happened() const {
    const CoreOp& op = ops_[won()];
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
    CoreSelect::finish(ops_.data(), size());
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
    CoreSelect::finish(ops_.data(), size());
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

  std::vector<std::shared_ptr<CoreChannel>> channels_;  // keeps every channel of ops_ alive
  std::vector<CoreOp> ops_;                          // never resized: ops are linked by address
  std::shared_ptr<Notifier> notifier_;
  Ref future_;  // a weak reference to the future, or the future itself (weak_or_strong)
  // The Python channels (weak references: the waiter is invisible to Python's gc, so it must
  // not own anything a cycle may run through) whose `waiting` sets pin the future.
  std::vector<Ref> pins_;
  PyObject* const loop_;  // the loop that awaits (identity only), null if none was running
  std::shared_ptr<LoopWaiter> self_;  // set while queued; moved out by the claimer's wake()
};

}  // namespace

pyb::object start_loop_waiter(std::vector<std::shared_ptr<CoreChannel>> channels,
                              std::vector<Ref> items, std::shared_ptr<Notifier> notifier,
                              const pyb::object& future, const pyb::tuple& pins) {
  std::vector<Ref> pin_sets;
  for (const pyb::handle& channel : pins) pin_sets.push_back(weak_or_strong(channel.ptr()));
  auto waiter = std::make_shared<LoopWaiter>(std::move(channels), std::move(items),
                                             std::move(notifier), future.ptr(), std::move(pin_sets));
  waiter->start();
  return pyb::cast(std::move(waiter));
}

void bind_loop_waiter(pyb::module_& m) {
  pyb::class_<LoopWaiter, std::shared_ptr<LoopWaiter>>(m, "LoopWaiter")
      .def("withdraw", &LoopWaiter::withdraw)
      .def("give_back", &LoopWaiter::give_back)
      .def("happened", &LoopWaiter::happened)
      .def("take", &LoopWaiter::take);
}

}  // namespace offload::py
