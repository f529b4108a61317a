// offload/channel.h
//
// Channel<T>: a multi-producer, multi-consumer channel shared by threads, coroutines (through
// the Python binding) and select. Bounded (a FIFO buffer of `capacity` items), unbounded
// (kUnbounded) or rendezvous (capacity 0: a send completes when a receiver takes the item).
//
//   offload::Channel<std::string> lines(128);
//   std::thread reader([&] {
//     for (std::string line; std::getline(in, line);) lines.send(std::move(line));
//     lines.close();                                    // receivers drain, then see kClosed
//   });
//   std::string line;
//   while (lines.recv(&line) == offload::ChannelStatus::kOk) consume(line);
//
//   offload::Select<int> sel;                           // several operations, exactly one happens
//   const int from_a = sel.recv(a), to_b = sel.send(b, 42);
//   offload::SelectResult r = sel.wait(absl::Now() + absl::Seconds(1));
//   if (r.status == offload::ChannelStatus::kOk && r.index == from_a) use(*sel.item(from_a));
//
// Semantics
//   * Items leave in the order they were sent; waiting parties are served first come, first
//     served. A sender that finds a waiting receiver hands the item straight to it (claiming
//     the receiver's Waiter, internal/waiter.h); a receiver that frees buffer space moves the
//     first waiting sender's item into the buffer. A woken party has already been served, so it
//     is never overtaken.
//   * send(item) moves from `item` only when it returns kOk; on kClosed, kTimeout or
//     kWouldBlock the caller still has it. A timed-out send was not delivered.
//   * close() wakes every waiter: waiting senders get kClosed (and keep their items); receivers
//     first drain the buffer, then get kClosed. Later sends get kClosed.
//   * An item handed to a receiver that then gives up (a cancelled coroutine) goes back with
//     give_back(): to the next waiting receiver, else to the head of the buffer (which may then
//     hold one item over capacity). No item is ever lost.
//   * Under the channel's lock items are only moved, never copied, and only moved-from shells
//     are destroyed there: for Python items, reference counts change only with the GIL,
//     outside core locks.
//   * for_each_item() shows an owner every item the channel holds (buffered, and those of
//     queued sends), and close_and_take_buffered() empties a channel that is being discarded:
//     what the Python binding needs to take part in Python's garbage collection.
//
// Lifetime: a channel must outlive every operation on it (the Python binding keeps its
// channels alive from its waiters).

#ifndef OFFLOAD_CHANNEL_H_
#define OFFLOAD_CHANNEL_H_

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "offload/internal/waiter.h"

namespace offload {

enum class ChannelStatus {
  kOk,          // the operation happened
  kClosed,      // the channel is closed (and, for a receive, drained)
  kWouldBlock,  // a try_ operation that could not happen at once
  kTimeout,     // the deadline passed first
};

template <class T>
class Channel;

namespace internal {

// One operation of a waiting party on one channel. Its fields are written by whoever completes
// it, under the channel's lock; the owner reads them after it was woken (and after finish()).
template <class T>
struct ChannelOp {
  Channel<T>* channel = nullptr;
  bool is_send = false;
  std::optional<T> item;  // send: the item to send, until taken; receive: the item received
  bool closed = false;    // completed by a closed channel

  // Queue membership, guarded by channel->mu_. An op stays valid while linked: its owner
  // unlinks it (finish()) before it goes away.
  Waiter* waiter = nullptr;
  int index = 0;
  ChannelOp* prev = nullptr;
  ChannelOp* next = nullptr;
  bool linked = false;
};

// Waiters to wake once every lock is released.
using WakeList = absl::InlinedVector<Waiter*, 2>;

inline void wake_all(const WakeList& wakes) {
  for (Waiter* w : wakes) w->wake();
}

// An intrusive FIFO of queued operations.
template <class T>
class OpQueue {
 public:
  using Op = ChannelOp<T>;
  bool empty() const { return head_ == nullptr; }
  std::size_t size() const { return size_; }
  const Op* front() const { return head_; }  // the rest follow through `next`
  void push_back(Op* op) {
    op->prev = tail_;
    op->next = nullptr;
    (tail_ ? tail_->next : head_) = op;
    tail_ = op;
    op->linked = true;
    ++size_;
  }
  void remove(Op* op) {
    (op->prev ? op->prev->next : head_) = op->next;
    (op->next ? op->next->prev : tail_) = op->prev;
    op->prev = op->next = nullptr;
    op->linked = false;
    --size_;
  }
  // The first op whose waiter this caller claims; ops of waiters already claimed or aborted
  // elsewhere are dropped on the way (their owners are finishing them).
  Op* claim_first() {
    while (Op* op = head_) {
      remove(op);
      if (op->waiter->claim(op->index)) return op;
    }
    return nullptr;
  }

 private:
  Op* head_ = nullptr;
  Op* tail_ = nullptr;
  std::size_t size_ = 0;
};

template <class T>
class SelectEngine;

}  // namespace internal

template <class T>
class Channel {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

  struct Stats {
    std::size_t capacity = 0;
    std::size_t buffered = 0;
    std::size_t waiting_senders = 0;    // queued send operations
    std::size_t waiting_receivers = 0;  // queued receive operations
    std::uint64_t sent = 0;             // items accepted by the channel
    std::uint64_t received = 0;         // items taken out (net of items given back)
    bool closed = false;
  };

  explicit Channel(std::size_t capacity) : capacity_(capacity) {}
  // No operation may be pending (see Lifetime above).
  ~Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  ChannelStatus send(T&& item, absl::Time deadline = absl::InfiniteFuture());
  ChannelStatus send(T&& item, absl::Duration timeout) {
    return send(std::move(item), absl::Now() + timeout);
  }
  ChannelStatus try_send(T&& item);

  ChannelStatus recv(T* out, absl::Time deadline = absl::InfiniteFuture());
  ChannelStatus recv(T* out, absl::Duration timeout) { return recv(out, absl::Now() + timeout); }
  ChannelStatus try_recv(T* out);

  // Refuses further sends and wakes every waiter; idempotent.
  void close();

  // Returns an item that a receive took but its receiver gave up: to the first waiting
  // receiver, else to the head of the buffer (capacity notwithstanding), closed or not.
  void give_back(T item);

  // Calls visit(item) under the channel's lock for every item the channel holds: the buffered
  // ones in order, then those that queued sends still hold. Stops at the first non-zero result
  // and returns it; 0 when every item was visited. `visit` must not use the channel.
  //
  //   int found = ch.for_each_item([&](const Item& item) { return item.id == wanted; });
  template <class Visit>
  int for_each_item(Visit visit) const;

  // close(), and takes every buffered item out (counted as received): for an owner that
  // discards the channel and must destroy its items after the lock is released.
  std::deque<T> close_and_take_buffered();

  bool closed() const {
    absl::MutexLock l(&mu_);
    return closed_;
  }
  std::size_t size() const {
    absl::MutexLock l(&mu_);
    return buffer_.size();
  }
  std::size_t capacity() const { return capacity_; }
  Stats stats() const;

 private:
  friend class internal::SelectEngine<T>;
  using Op = internal::ChannelOp<T>;

  // Completes `op` now if it can: true when it happened (or met a closed channel).
  bool try_complete(Op* op, internal::WakeList* wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a receive took from the buffer: moves waiting senders' items into the freed space.
  void refill(internal::WakeList* wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void enqueue(Op* op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    (op->is_send ? senders_ : receivers_).push_back(op);
  }
  void dequeue(Op* op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    (op->is_send ? senders_ : receivers_).remove(op);
  }
  // Refuses further sends and completes every queued operation as closed.
  void close_locked(internal::WakeList* wakes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<T> buffer_ ABSL_GUARDED_BY(mu_);
  internal::OpQueue<T> senders_ ABSL_GUARDED_BY(mu_);
  internal::OpQueue<T> receivers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t received_ ABSL_GUARDED_BY(mu_) = 0;
};

namespace internal {

// Runs one or several channel operations as one: exactly one happens, or none. The building
// blocks below are public to waiter implementations (the Python binding's loop waiter); the
// Channel and Select members compose them for threads.
//
//   start()  locks the distinct channels of `ops` in address order, then tries each op in
//            order; the first that can happen now does (its index is returned). Otherwise,
//            when `waiter` is given, queues every op with it and returns Waiter::kWaiting.
//   finish() unqueues the ops still queued, each under its own channel's lock. The owner calls
//            it once woken or after a successful abort(), before it reads an op's outcome.
template <class T>
class SelectEngine {
 public:
  using Op = ChannelOp<T>;

  static int start(Op* ops, int n, Waiter* waiter) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    WakeList wakes;
    int done;
    if (n == 1) {  // the common case: one lock, nothing to sort
      absl::MutexLock l(&ops[0].channel->mu_);
      done = start_locked(ops, n, waiter, &wakes);
    } else {
      absl::InlinedVector<absl::Mutex*, 4> locks;
      for (int i = 0; i < n; ++i) locks.push_back(&ops[i].channel->mu_);
      std::sort(locks.begin(), locks.end());
      locks.erase(std::unique(locks.begin(), locks.end()), locks.end());
      for (absl::Mutex* mu : locks) mu->Lock();
      done = start_locked(ops, n, waiter, &wakes);
      for (auto it = locks.rbegin(); it != locks.rend(); ++it) (*it)->Unlock();
    }
    wake_all(wakes);
    return done;
  }

  static void finish(Op* ops, int n) {
    for (int i = 0; i < n; ++i) {
      Channel<T>& ch = *ops[i].channel;
      absl::MutexLock l(&ch.mu_);
      if (ops[i].linked) ch.dequeue(&ops[i]);
    }
  }

  // Blocks the calling thread until one op happens or the deadline passes: the index of the op
  // that happened, or Waiter::kAborted when nothing did.
  //
  // How the thread blocks is the caller's: `block(waiter, deadline)` waits for the wake-up
  // (true) or gives up (false: the deadline passed, or the caller was interrupted);
  // `await_claim(waiter)` waits for the wake-up of a claim that beat the give-up, which is
  // imminent. The two-argument form blocks plainly; the Python binding releases the GIL.
  template <class Block, class AwaitClaim>
  static int wait(Op* ops, int n, absl::Time deadline, Block block, AwaitClaim await_claim) {
    // Most operations can happen at once: try them before paying for a waiter (it owns an
    // absl::Notification) or reading the clock. Trying changes nothing when nothing happens,
    // so the second start() below queues the ops exactly as a first one would.
    const int now = start(ops, n, nullptr);
    if (now != Waiter::kWaiting) return now;
    if (deadline != absl::InfiniteFuture() && deadline <= absl::Now()) return Waiter::kAborted;
    ThreadWaiter waiter;
    const int done = start(ops, n, &waiter);
    if (done != Waiter::kWaiting) return done;
    if (!block(waiter, deadline) && !waiter.abort()) await_claim(waiter);
    finish(ops, n);
    return waiter.state();
  }

  static int wait(Op* ops, int n, absl::Time deadline) {
    return wait(
        ops, n, deadline, [](ThreadWaiter& w, absl::Time d) { return w.wait_until(d); },
        [](ThreadWaiter& w) { w.wait(); });
  }

 private:
  // With every channel of `ops` locked.
  static int start_locked(Op* ops, int n, Waiter* waiter, WakeList* wakes)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (int i = 0; i < n; ++i) {
      if (ops[i].channel->try_complete(&ops[i], wakes)) return i;
    }
    if (waiter != nullptr) {
      for (int i = 0; i < n; ++i) {
        ops[i].waiter = waiter;
        ops[i].index = i;
        ops[i].channel->enqueue(&ops[i]);
      }
    }
    return Waiter::kWaiting;
  }
};

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// Channel implementation.

template <class T>
bool Channel<T>::try_complete(Op* op, internal::WakeList* wakes) {
  if (op->is_send) {
    if (closed_) {
      op->closed = true;
      return true;
    }
    if (Op* receiver = receivers_.claim_first()) {
      receiver->item = std::move(op->item);
      ++received_;  // the waiting receiver's receive happened too
      wakes->push_back(receiver->waiter);
    } else if (buffer_.size() < capacity_) {
      buffer_.push_back(std::move(*op->item));
    } else {
      return false;
    }
    op->item.reset();  // moved-from; nothing is destroyed
    ++sent_;
    return true;
  }
  if (!buffer_.empty()) {
    op->item.emplace(std::move(buffer_.front()));
    buffer_.pop_front();
    refill(wakes);
  } else if (Op* sender = senders_.claim_first()) {
    op->item = std::move(sender->item);
    sender->item.reset();
    ++sent_;  // the waiting sender's send happened too
    wakes->push_back(sender->waiter);
  } else if (closed_) {
    op->closed = true;
    return true;
  } else {
    return false;
  }
  ++received_;
  return true;
}

template <class T>
void Channel<T>::refill(internal::WakeList* wakes) {
  while (buffer_.size() < capacity_) {
    Op* sender = senders_.claim_first();
    if (sender == nullptr) return;
    buffer_.push_back(std::move(*sender->item));
    sender->item.reset();
    ++sent_;
    wakes->push_back(sender->waiter);
  }
}

template <class T>
ChannelStatus Channel<T>::send(T&& item, absl::Time deadline) {
  Op op;
  op.channel = this;
  op.is_send = true;
  op.item.emplace(std::move(item));
  const int done = internal::SelectEngine<T>::wait(&op, 1, deadline);
  if (done == internal::Waiter::kAborted) {
    item = std::move(*op.item);
    return ChannelStatus::kTimeout;
  }
  if (op.closed) {
    item = std::move(*op.item);
    return ChannelStatus::kClosed;
  }
  return ChannelStatus::kOk;
}

template <class T>
ChannelStatus Channel<T>::try_send(T&& item) {
  Op op;
  op.channel = this;
  op.is_send = true;
  op.item.emplace(std::move(item));
  const int done = internal::SelectEngine<T>::start(&op, 1, nullptr);
  if (done == internal::Waiter::kWaiting || op.closed) {
    item = std::move(*op.item);
    return done == internal::Waiter::kWaiting ? ChannelStatus::kWouldBlock : ChannelStatus::kClosed;
  }
  return ChannelStatus::kOk;
}

template <class T>
ChannelStatus Channel<T>::recv(T* out, absl::Time deadline) {
  Op op;
  op.channel = this;
  const int done = internal::SelectEngine<T>::wait(&op, 1, deadline);
  if (done == internal::Waiter::kAborted) return ChannelStatus::kTimeout;
  if (op.closed) return ChannelStatus::kClosed;
  *out = std::move(*op.item);
  return ChannelStatus::kOk;
}

template <class T>
ChannelStatus Channel<T>::try_recv(T* out) {
  Op op;
  op.channel = this;
  if (internal::SelectEngine<T>::start(&op, 1, nullptr) == internal::Waiter::kWaiting) {
    return ChannelStatus::kWouldBlock;
  }
  if (op.closed) return ChannelStatus::kClosed;
  *out = std::move(*op.item);
  return ChannelStatus::kOk;
}

template <class T>
void Channel<T>::close() {
  internal::WakeList wakes;
  {
    absl::MutexLock l(&mu_);
    close_locked(&wakes);
  }
  internal::wake_all(wakes);
}

template <class T>
void Channel<T>::close_locked(internal::WakeList* wakes) {
  if (closed_) return;
  closed_ = true;
  // Receivers wait only on an empty buffer, so every one of them is done; senders keep items.
  for (internal::OpQueue<T>* queue : {&receivers_, &senders_}) {
    while (Op* op = queue->claim_first()) {
      op->closed = true;
      wakes->push_back(op->waiter);
    }
  }
}

template <class T>
std::deque<T> Channel<T>::close_and_take_buffered() {
  internal::WakeList wakes;
  std::deque<T> items;
  {
    absl::MutexLock l(&mu_);
    close_locked(&wakes);
    received_ += buffer_.size();
    items.swap(buffer_);
  }
  internal::wake_all(wakes);
  return items;
}

template <class T>
template <class Visit>
int Channel<T>::for_each_item(Visit visit) const {
  absl::MutexLock l(&mu_);
  for (const T& item : buffer_) {
    if (const int stop = visit(item)) return stop;
  }
  for (const Op* op = senders_.front(); op != nullptr; op = op->next) {
    if (!op->item) continue;
    if (const int stop = visit(*op->item)) return stop;
  }
  return 0;
}

template <class T>
void Channel<T>::give_back(T item) {
  internal::WakeList wakes;
  {
    absl::MutexLock l(&mu_);
    --received_;
    if (Op* receiver = receivers_.claim_first()) {
      receiver->item.emplace(std::move(item));
      ++received_;
      wakes.push_back(receiver->waiter);
    } else {
      buffer_.push_front(std::move(item));
    }
  }
  internal::wake_all(wakes);
}

template <class T>
typename Channel<T>::Stats Channel<T>::stats() const {
  absl::MutexLock l(&mu_);
  Stats s;
  s.capacity = capacity_;
  s.buffered = buffer_.size();
  s.waiting_senders = senders_.size();
  s.waiting_receivers = receivers_.size();
  s.sent = sent_;
  s.received = received_;
  s.closed = closed_;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Select: several send and receive operations, of which exactly one happens.

struct SelectResult {
  int index = -1;  // the operation that happened; -1 on kTimeout / kWouldBlock
  ChannelStatus status = ChannelStatus::kTimeout;  // kOk, or kClosed when its channel was closed
};

template <class T>
class Select {
 public:
  // Each returns the operation's index (0, 1, ... in the order added). When several are ready,
  // the one added first happens.
  int recv(Channel<T>& ch) { return add(ch, false, std::nullopt); }
  int send(Channel<T>& ch, T item) { return add(ch, true, std::move(item)); }

  // Waits until one operation happens or the deadline passes. One Select runs once. With no
  // operation at all it returns kWouldBlock at once (nothing could ever happen).
  SelectResult wait(absl::Time deadline = absl::InfiniteFuture()) {
    if (ops_.empty()) return SelectResult{-1, ChannelStatus::kWouldBlock};
    return result(internal::SelectEngine<T>::wait(ops_.data(), size(), deadline),
                  ChannelStatus::kTimeout);
  }
  SelectResult wait(absl::Duration timeout) { return wait(absl::Now() + timeout); }
  SelectResult try_select() {
    const int done = internal::SelectEngine<T>::start(ops_.data(), size(), nullptr);
    return result(done, ChannelStatus::kWouldBlock);
  }

  // Operation `index`'s item: what a receive got, or what a send still holds (not sent).
  std::optional<T>& item(int index) { return ops_[static_cast<std::size_t>(index)].item; }

 private:
  int size() const { return static_cast<int>(ops_.size()); }
  int add(Channel<T>& ch, bool is_send, std::optional<T> item) {
    internal::ChannelOp<T>& op = ops_.emplace_back();
    op.channel = &ch;
    op.is_send = is_send;
    op.item = std::move(item);
    return size() - 1;
  }
  SelectResult result(int done, ChannelStatus none) {
    if (done < 0) return SelectResult{-1, none};
    const bool closed = ops_[static_cast<std::size_t>(done)].closed;
    return SelectResult{done, closed ? ChannelStatus::kClosed : ChannelStatus::kOk};
  }

  // Contiguous for SelectEngine; ops are linked into queues only inside wait(), after the last
  // add(), so their addresses are stable while linked.
  std::vector<internal::ChannelOp<T>> ops_;
};

}  // namespace offload

#endif  // OFFLOAD_CHANNEL_H_
