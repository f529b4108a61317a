#include "offload/channel.h"

#include <atomic>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "offload/notifier.h"

namespace offload {
namespace {

using Status = ChannelStatus;

// Spins until `pred` holds (the state it waits for is reached by another thread).
template <class Pred>
void WaitUntil(Pred pred) {
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!pred()) {
    ASSERT_LT(absl::Now(), give_up) << "condition never held";
    std::this_thread::yield();
  }
}

template <class T>
void WaitForReceivers(const Channel<T>& ch, std::size_t n) {
  WaitUntil([&] { return ch.stats().waiting_receivers == n; });
}
template <class T>
void WaitForSenders(const Channel<T>& ch, std::size_t n) {
  WaitUntil([&] { return ch.stats().waiting_senders == n; });
}

TEST(Channel, BoundedKeepsFifoOrderAndCounts) {
  Channel<int> ch(4);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(ch.try_send(int{i}), Status::kOk);
  EXPECT_EQ(ch.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    int v = -1;
    ASSERT_EQ(ch.try_recv(&v), Status::kOk);
    EXPECT_EQ(v, i);
  }
  Channel<int>::Stats s = ch.stats();
  EXPECT_EQ(s.sent, 4u);
  EXPECT_EQ(s.received, 4u);
  EXPECT_EQ(s.buffered, 0u);
}

TEST(Channel, TrySendOnAFullChannelWouldBlockAndLeavesTheItemWithTheCaller) {
  Channel<std::unique_ptr<int>> ch(1);
  ASSERT_EQ(ch.try_send(std::make_unique<int>(1)), Status::kOk);
  auto second = std::make_unique<int>(2);
  EXPECT_EQ(ch.try_send(std::move(second)), Status::kWouldBlock);
  ASSERT_NE(second, nullptr);  // not moved from
  EXPECT_EQ(*second, 2);
}

TEST(Channel, TryRecvOnAnEmptyChannelWouldBlock) {
  Channel<int> ch(3);
  int v = 7;
  EXPECT_EQ(ch.try_recv(&v), Status::kWouldBlock);
  EXPECT_EQ(v, 7);
}

TEST(Channel, UnboundedNeverBlocksASender) {
  Channel<int> ch(Channel<int>::kUnbounded);
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(ch.try_send(int{i}), Status::kOk);
  EXPECT_EQ(ch.size(), 100000u);
}

TEST(Channel, RendezvousTrySendFailsUnlessAReceiverWaits) {
  Channel<int> ch(0);
  EXPECT_EQ(ch.try_send(1), Status::kWouldBlock);
  int got = 0;
  std::thread receiver([&] { EXPECT_EQ(ch.recv(&got), Status::kOk); });
  WaitForReceivers(ch, 1);
  EXPECT_EQ(ch.try_send(5), Status::kOk);
  receiver.join();
  EXPECT_EQ(got, 5);
}

TEST(Channel, RendezvousSendReturnsOnlyOnceAReceiverTookTheItem) {
  Channel<int> ch(0);
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    EXPECT_EQ(ch.send(9), Status::kOk);
    sent = true;
  });
  WaitForSenders(ch, 1);
  EXPECT_FALSE(sent.load());
  EXPECT_EQ(ch.size(), 0u);  // nothing is buffered in a rendezvous channel
  int v = 0;
  ASSERT_EQ(ch.recv(&v), Status::kOk);
  sender.join();
  EXPECT_EQ(v, 9);
  EXPECT_TRUE(sent.load());
}

TEST(Channel, WaitingReceiversAreServedInArrivalOrder) {
  Channel<int> ch(2);
  constexpr int kReceivers = 4;
  std::vector<int> got(kReceivers, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kReceivers; ++i) {
    threads.emplace_back([&, i] { EXPECT_EQ(ch.recv(&got[i]), Status::kOk); });
    WaitForReceivers(ch, static_cast<std::size_t>(i) + 1);
  }
  for (int i = 0; i < kReceivers; ++i) ASSERT_EQ(ch.send(i * 10), Status::kOk);
  for (auto& t : threads) t.join();
  for (int i = 0; i < kReceivers; ++i) EXPECT_EQ(got[i], i * 10);
}

TEST(Channel, WaitingSendersAreServedInArrivalOrderThroughTheBuffer) {
  Channel<int> ch(1);
  ASSERT_EQ(ch.try_send(0), Status::kOk);
  constexpr int kSenders = 4;
  std::vector<std::thread> threads;
  for (int i = 1; i <= kSenders; ++i) {
    threads.emplace_back([&, i] { EXPECT_EQ(ch.send(int{i}), Status::kOk); });
    WaitForSenders(ch, static_cast<std::size_t>(i));
  }
  for (int i = 0; i <= kSenders; ++i) {
    int v = -1;
    ASSERT_EQ(ch.recv(&v), Status::kOk);
    EXPECT_EQ(v, i);
  }
  for (auto& t : threads) t.join();
}

TEST(Channel, StatsCountHandOffsToAndFromWaitingParties) {
  Channel<int> ch(0);
  constexpr int kItems = 50;
  std::thread sender([&] {
    for (int i = 0; i < kItems; ++i) ASSERT_EQ(ch.send(int{i}), Status::kOk);
  });
  for (int i = 0; i < kItems; ++i) {
    int v = -1;
    ASSERT_EQ(ch.recv(&v), Status::kOk);
    EXPECT_EQ(v, i);
  }
  sender.join();
  Channel<int>::Stats s = ch.stats();
  EXPECT_EQ(s.sent, std::uint64_t{kItems});
  EXPECT_EQ(s.received, std::uint64_t{kItems});
  EXPECT_EQ(s.waiting_senders + s.waiting_receivers, 0u);
}

TEST(Channel, ARecvTimesOutAndLeavesNoWaiterBehind) {
  Channel<int> ch(1);
  int v = 0;
  const absl::Time start = absl::Now();
  EXPECT_EQ(ch.recv(&v, absl::Milliseconds(30)), Status::kTimeout);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  EXPECT_EQ(ch.stats().waiting_receivers, 0u);
  ASSERT_EQ(ch.try_send(3), Status::kOk);  // and the next item is buffered, not lost
  EXPECT_EQ(ch.size(), 1u);
}

TEST(Channel, ATimedOutSendWasNotDeliveredAndTheCallerKeepsTheItem) {
  Channel<std::unique_ptr<int>> ch(0);
  auto item = std::make_unique<int>(4);
  EXPECT_EQ(ch.send(std::move(item), absl::Milliseconds(20)), Status::kTimeout);
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(*item, 4);
  Channel<std::unique_ptr<int>>::Stats s = ch.stats();
  EXPECT_EQ(s.sent, 0u);
  EXPECT_EQ(s.waiting_senders, 0u);
}

TEST(Channel, AnExpiredDeadlineStillTakesAReadyItem) {
  Channel<int> ch(1);
  ASSERT_EQ(ch.try_send(1), Status::kOk);
  int v = 0;
  EXPECT_EQ(ch.recv(&v, absl::InfinitePast()), Status::kOk);
  EXPECT_EQ(v, 1);
}

TEST(Channel, CloseLetsReceiversDrainTheBufferThenReportsClosed) {
  Channel<int> ch(4);
  ASSERT_EQ(ch.try_send(1), Status::kOk);
  ASSERT_EQ(ch.try_send(2), Status::kOk);
  ch.close();
  ch.close();  // idempotent
  EXPECT_TRUE(ch.closed());
  EXPECT_EQ(ch.try_send(3), Status::kClosed);
  int v = 0;
  EXPECT_EQ(ch.recv(&v), Status::kOk);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(ch.try_recv(&v), Status::kOk);
  EXPECT_EQ(v, 2);
  EXPECT_EQ(ch.recv(&v), Status::kClosed);
  EXPECT_EQ(ch.try_recv(&v), Status::kClosed);
}

TEST(Channel, CloseWakesEveryWaitingReceiverAndSender) {
  Channel<std::unique_ptr<int>> empty(1);
  Channel<std::unique_ptr<int>> full(1);
  ASSERT_EQ(full.try_send(std::make_unique<int>(0)), Status::kOk);
  std::vector<std::thread> threads;
  std::atomic<int> closed_receivers{0}, closed_senders{0}, kept_items{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      std::unique_ptr<int> v;
      if (empty.recv(&v) == Status::kClosed) ++closed_receivers;
    });
    threads.emplace_back([&, i] {
      auto item = std::make_unique<int>(i);
      if (full.send(std::move(item)) == Status::kClosed) ++closed_senders;
      if (item != nullptr && *item == i) ++kept_items;
    });
  }
  WaitForReceivers(empty, 3);
  WaitForSenders(full, 3);
  empty.close();
  full.close();
  for (auto& t : threads) t.join();
  EXPECT_EQ(closed_receivers.load(), 3);
  EXPECT_EQ(closed_senders.load(), 3);
  EXPECT_EQ(kept_items.load(), 3);
  std::unique_ptr<int> v;
  EXPECT_EQ(full.recv(&v), Status::kOk);  // the buffered item survives the close
  EXPECT_EQ(*v, 0);
}

TEST(Channel, GiveBackGoesToTheNextWaitingReceiverElseToTheHead) {
  Channel<int> ch(1);
  ASSERT_EQ(ch.try_send(2), Status::kOk);
  ch.give_back(1);  // over capacity, at the head
  EXPECT_EQ(ch.size(), 2u);
  int v = 0;
  ASSERT_EQ(ch.try_recv(&v), Status::kOk);
  EXPECT_EQ(v, 1);
  ASSERT_EQ(ch.try_recv(&v), Status::kOk);
  EXPECT_EQ(v, 2);

  int got = 0;
  std::thread receiver([&] { EXPECT_EQ(ch.recv(&got), Status::kOk); });
  WaitForReceivers(ch, 1);
  ch.give_back(8);
  receiver.join();
  EXPECT_EQ(got, 8);
}

TEST(Channel, ForEachItemVisitsTheBufferInOrderThenTheItemsOfQueuedSends) {
  Channel<int> ch(2);
  ASSERT_EQ(ch.try_send(1), Status::kOk);
  ASSERT_EQ(ch.try_send(2), Status::kOk);
  std::thread sender([&] { EXPECT_EQ(ch.send(3), Status::kOk); });
  WaitForSenders(ch, 1);
  std::vector<int> seen;
  EXPECT_EQ(ch.for_each_item([&](int v) {
    seen.push_back(v);
    return 0;
  }),
            0);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  seen.clear();
  EXPECT_EQ(ch.for_each_item([&](int v) {  // stops at the first non-zero result
    seen.push_back(v);
    return v == 2 ? 7 : 0;
  }),
            7);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  int v = 0;
  ASSERT_EQ(ch.recv(&v), Status::kOk);  // frees a slot: the queued send moves into the buffer
  sender.join();
  seen.clear();
  ch.for_each_item([&](int item) {
    seen.push_back(item);
    return 0;
  });
  EXPECT_EQ(seen, (std::vector<int>{2, 3}));
}

TEST(Channel, CloseAndTakeBufferedEmptiesItAndQueuedSendersKeepTheirItems) {
  Channel<std::unique_ptr<int>> ch(1);
  ASSERT_EQ(ch.try_send(std::make_unique<int>(1)), Status::kOk);
  bool kept = false;
  std::thread sender([&] {
    auto item = std::make_unique<int>(2);
    EXPECT_EQ(ch.send(std::move(item)), Status::kClosed);
    kept = item != nullptr && *item == 2;
  });
  WaitForSenders(ch, 1);
  std::deque<std::unique_ptr<int>> items = ch.close_and_take_buffered();
  sender.join();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(*items[0], 1);
  EXPECT_TRUE(kept);
  EXPECT_TRUE(ch.closed());
  std::unique_ptr<int> v;
  EXPECT_EQ(ch.try_recv(&v), Status::kClosed);
  EXPECT_TRUE(ch.close_and_take_buffered().empty());  // idempotent
  const Channel<std::unique_ptr<int>>::Stats s = ch.stats();
  EXPECT_EQ(s.sent, 1u);
  EXPECT_EQ(s.received, 1u);  // the taken item counts as received
  EXPECT_EQ(s.waiting_senders, 0u);
}

TEST(Select, TakesTheFirstReadyOperationInTheOrderAdded) {
  Channel<int> a(1), b(1);
  ASSERT_EQ(a.try_send(1), Status::kOk);
  ASSERT_EQ(b.try_send(2), Status::kOk);
  Select<int> sel;
  sel.recv(b);
  sel.recv(a);
  SelectResult r = sel.try_select();
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.index, 0);
  EXPECT_EQ(*sel.item(0), 2);
  EXPECT_FALSE(sel.item(1).has_value());
  EXPECT_EQ(a.size(), 1u);  // the other operation did not happen
}

TEST(Select, TrySelectWouldBlockWhenNothingIsReady) {
  Channel<int> a(1), b(0);
  Select<int> sel;
  sel.recv(a);
  sel.send(b, 5);
  SelectResult r = sel.try_select();
  EXPECT_EQ(r.status, Status::kWouldBlock);
  EXPECT_EQ(r.index, -1);
  EXPECT_EQ(*sel.item(1), 5);  // the send still holds its item
}

TEST(Select, WaitsOnSeveralChannelsAndExactlyOneOperationHappens) {
  Channel<int> a(0), b(0);
  Select<int> sel;
  const int from_a = sel.recv(a);
  const int from_b = sel.recv(b);
  SelectResult r;
  std::thread waiter([&] { r = sel.wait(); });
  WaitForReceivers(b, 1);
  ASSERT_EQ(b.send(7), Status::kOk);
  waiter.join();
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.index, from_b);
  EXPECT_EQ(*sel.item(from_b), 7);
  EXPECT_FALSE(sel.item(from_a).has_value());
  EXPECT_EQ(a.stats().waiting_receivers, 0u);  // the losing operation was withdrawn
  EXPECT_EQ(a.try_send(1), Status::kWouldBlock);
}

TEST(Select, ASendOperationHandsItsItemToAReceiver) {
  Channel<int> in(0), out(0);
  Select<int> sel;
  sel.recv(in);
  const int to_out = sel.send(out, 11);
  SelectResult r;
  std::thread waiter([&] { r = sel.wait(absl::Now() + absl::Seconds(30)); });
  WaitForSenders(out, 1);
  int v = 0;
  ASSERT_EQ(out.recv(&v), Status::kOk);
  waiter.join();
  EXPECT_EQ(r.index, to_out);
  EXPECT_EQ(v, 11);
  EXPECT_FALSE(sel.item(to_out).has_value());
}

TEST(Select, TimesOutWithNothingDoneAndNothingQueued) {
  Channel<int> a(0), b(0);
  Select<int> sel;
  sel.recv(a);
  sel.send(b, 3);
  SelectResult r = sel.wait(absl::Milliseconds(20));
  EXPECT_EQ(r.status, Status::kTimeout);
  EXPECT_EQ(*sel.item(1), 3);
  EXPECT_EQ(a.stats().waiting_receivers, 0u);
  EXPECT_EQ(b.stats().waiting_senders, 0u);
}

TEST(Select, AClosedChannelCompletesTheSelectWithClosed) {
  Channel<int> a(0), b(0);
  Select<int> sel;
  sel.recv(a);
  const int from_b = sel.recv(b);
  SelectResult r;
  std::thread waiter([&] { r = sel.wait(); });
  WaitForReceivers(b, 1);
  b.close();
  waiter.join();
  EXPECT_EQ(r.index, from_b);
  EXPECT_EQ(r.status, Status::kClosed);
}

TEST(Select, AnEmptySelectReturnsAtOnceInsteadOfWaitingForever) {
  Select<int> sel;
  EXPECT_EQ(sel.wait().status, Status::kWouldBlock);
  EXPECT_EQ(sel.try_select().status, Status::kWouldBlock);
}

TEST(Select, SendAndReceiveOnTheSameChannelNeverMeetEachOther) {
  Channel<int> ch(0);
  Select<int> sel;
  sel.send(ch, 1);
  sel.recv(ch);
  EXPECT_EQ(sel.wait(absl::Milliseconds(10)).status, Status::kTimeout);
}

// Everything sent is received exactly once, with threads sending and receiving through plain
// operations and selects under random deadlines, then a close.
void StressCountsEveryItem(std::size_t capacity) {
  Channel<std::int64_t> a(capacity), b(capacity);
  constexpr int kProducers = 4, kConsumers = 4, kEach = 3000;
  std::atomic<std::int64_t> sent_sum{0}, received_sum{0};
  std::atomic<int> sent_count{0}, received_count{0};
  std::vector<std::thread> producers, consumers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(p);
      for (int i = 0; i < kEach; ++i) {
        const std::int64_t v = std::int64_t{p} * 1'000'000 + i + 1;
        const absl::Time deadline = absl::Now() + absl::Microseconds(rng() % 200);
        bool ok;
        if (rng() % 2) {
          Select<std::int64_t> sel;
          sel.send(a, v);
          sel.send(b, v);
          ok = sel.wait(deadline).status == Status::kOk;
        } else {
          std::int64_t item = v;
          ok = (rng() % 2 ? a : b).send(std::move(item), deadline) == Status::kOk;
        }
        if (ok) {
          sent_sum += v;
          ++sent_count;
        }
      }
    });
  }
  std::atomic<bool> stop{false};
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c] {
      std::mt19937 rng(100 + c);
      int closed_seen = 0;
      while (closed_seen < 2) {
        const absl::Time deadline = absl::Now() + absl::Microseconds(rng() % 300);
        if (rng() % 2) {
          Select<std::int64_t> sel;
          sel.recv(a);
          sel.recv(b);
          SelectResult r = sel.wait(deadline);
          if (r.status == Status::kOk) {
            received_sum += *sel.item(r.index);
            ++received_count;
          } else if (r.status == Status::kClosed) {
            // One channel is closed: drain both with plain receives.
            closed_seen = 2;
            for (Channel<std::int64_t>* ch : {&a, &b}) {
              std::int64_t v;
              while (ch->recv(&v) == Status::kOk) {
                received_sum += v;
                ++received_count;
              }
            }
          }
        } else {
          std::int64_t v;
          Status s = (rng() % 2 ? a : b).recv(&v, deadline);
          if (s == Status::kOk) {
            received_sum += v;
            ++received_count;
          } else if (s == Status::kClosed && stop.load()) {
            closed_seen = 2;
            for (Channel<std::int64_t>* ch : {&a, &b}) {
              while (ch->recv(&v) == Status::kOk) {
                received_sum += v;
                ++received_count;
              }
            }
          }
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  stop = true;
  a.close();
  b.close();
  for (auto& t : consumers) t.join();
  EXPECT_GT(sent_count.load(), 0);
  EXPECT_EQ(received_count.load(), sent_count.load());
  EXPECT_EQ(received_sum.load(), sent_sum.load());
  EXPECT_EQ(a.stats().sent + b.stats().sent, static_cast<std::uint64_t>(sent_count.load()));
  EXPECT_EQ(a.stats().received + b.stats().received,
            static_cast<std::uint64_t>(received_count.load()));
  EXPECT_EQ(a.stats().waiting_receivers + b.stats().waiting_receivers, 0u);
}

TEST(ChannelStress, RendezvousCountsEveryItem) { StressCountsEveryItem(0); }
TEST(ChannelStress, CapacityOneCountsEveryItem) { StressCountsEveryItem(1); }
TEST(ChannelStress, BoundedCountsEveryItem) { StressCountsEveryItem(64); }
TEST(ChannelStress, UnboundedCountsEveryItem) { StressCountsEveryItem(Channel<int>::kUnbounded); }

// A receiver that waits the way a coroutine does: its wake-up is a task on a Notifier (the
// loop's queue), and it may be cancelled at any moment, before or after an item was handed to
// it. A handed item must then go back to the channel.
class LoopReceiver final : public internal::Waiter {
 public:
  LoopReceiver(Channel<int>& ch, Notifier& loop) : loop_(loop) { op_.channel = &ch; }
  // True when the receive happened at once.
  bool start() { return internal::SelectEngine<int>::start(&op_, 1, this) == 0; }
  void wake() override { ASSERT_TRUE(loop_.add([this] { woken_ = true; }).ok()); }
  // Cancels: false when nothing had been handed over yet (the receive is withdrawn).
  bool cancel() {
    const bool aborted = abort();
    internal::SelectEngine<int>::finish(&op_, 1);  // also synchronizes with a hand-off
    return !aborted;
  }
  // After a claim: waits (draining the loop) for the claimer's wake-up, then the outcome.
  bool outcome(int* out) {
    while (!woken_) loop_.drain();
    internal::SelectEngine<int>::finish(&op_, 1);
    if (op_.closed) return false;
    *out = *op_.item;
    return true;
  }
  void give_back() {
    op_.channel->give_back(std::move(*op_.item));
    op_.item.reset();
  }

 private:
  Notifier& loop_;
  internal::ChannelOp<int> op_;
  bool woken_ = false;  // set on this thread, by drain()
};

TEST(ChannelStress, CancelledLoopReceiversNeverLoseAnItem) {
  Channel<int> ch(2);
  Notifier loop([] {});  // the "loop" is this thread, which drains by polling
  constexpr int kItems = 20000;
  std::thread producer([&] {
    for (int i = 1; i <= kItems; ++i) ASSERT_EQ(ch.send(int{i}), Status::kOk);
    ch.close();
  });
  std::mt19937 rng(7);
  std::int64_t sum = 0;
  int count = 0, given_back = 0, withdrawn = 0;
  for (bool closed = false; !closed;) {
    LoopReceiver r(ch, loop);
    int v = 0;
    bool claimed;
    if (r.start()) {
      claimed = true;
      r.wake();  // an immediate completion wakes like any other (the binding does the same)
    } else {
      // Let the producer race us, then cancel at a random point: before or after the
      // hand-off, before or after the loop saw the wake-up.
      for (unsigned spins = rng() % 64; spins > 0; --spins) std::this_thread::yield();
      if (rng() % 2) loop.drain();
      claimed = rng() % 4 == 0 ? true : r.cancel();
      if (!claimed) ++withdrawn;
    }
    if (!claimed) continue;
    if (!r.outcome(&v)) {
      closed = true;
    } else if (rng() % 3 == 0) {
      r.give_back();  // cancelled after the item was handed over: it goes back
      ++given_back;
    } else {
      sum += v;
      ++count;
    }
  }
  producer.join();
  EXPECT_EQ(count, kItems);
  EXPECT_EQ(sum, std::int64_t{kItems} * (kItems + 1) / 2);
  EXPECT_GT(given_back, 0);
  EXPECT_GT(withdrawn, 0);
}

}  // namespace
}  // namespace offload
