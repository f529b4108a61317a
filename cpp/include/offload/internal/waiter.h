// offload/internal/waiter.h
//
// Waiter: one blocked party of the channels — a thread, a coroutine on some event loop, or a
// select over several operations. It is what a channel's queues hold (through ChannelOp), so
// that every kind of party waits, is handed an item and is woken the same way.
//
// Claim protocol (exactly one operation of a waiter happens, or none):
//   * state() is kWaiting while the waiter is queued. A party that wants to complete one of its
//     operations — a sender handing it an item, a receiver taking its item, close() — must first
//     win claim(op_index), a compare-and-swap from kWaiting. The loser of the race skips it.
//   * The owner gives up waiting (timeout, cancellation) with abort(): the same CAS, to kAborted.
//     If abort() fails, an operation was claimed first and the owner must accept that outcome
//     (a received item is then given back to its channel by the owner, never dropped).
//   * The claimer hands the item over under the channel's lock, then calls wake() after
//     releasing every lock, exactly once. Until wake() the waiter stays alive: an owner whose
//     abort() failed waits for it.

#ifndef OFFLOAD_INTERNAL_WAITER_H_
#define OFFLOAD_INTERNAL_WAITER_H_

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace offload::internal {

class Waiter {
 public:
  static constexpr int kWaiting = -1;
  static constexpr int kAborted = -2;

  // True when the caller won the right to complete operation `op` (>= 0).
  bool claim(int op) noexcept {
    int expected = kWaiting;
    return state_.compare_exchange_strong(expected, op, std::memory_order_acq_rel,
                                          std::memory_order_acquire);
  }
  // True when the owner gave up before any operation was claimed.
  bool abort() noexcept { return claim(kAborted); }
  // kWaiting, kAborted, or the index of the claimed operation.
  int state() const noexcept { return state_.load(std::memory_order_acquire); }

  // Called once by the winner of claim(), outside every channel lock.
  virtual void wake() = 0;

 protected:
  Waiter() = default;
  ~Waiter() = default;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

 private:
  std::atomic<int> state_{kWaiting};
};

// A thread blocked in a channel operation (or a select); lives on that thread's stack.
class ThreadWaiter final : public Waiter {
 public:
  void wake() override { woken_.Notify(); }
  // True once woken; false at the deadline.
  bool wait_until(absl::Time deadline) { return woken_.WaitForNotificationWithDeadline(deadline); }
  void wait() { woken_.WaitForNotification(); }

 private:
  absl::Notification woken_;  // safe to destroy once a wait has returned true
};

}  // namespace offload::internal

#endif  // OFFLOAD_INTERNAL_WAITER_H_
