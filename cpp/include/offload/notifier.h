// offload/notifier.h
//
// Notifier: the completion queue of one consumer thread (an event loop). Any thread adds
// tasks; the consumer runs them in batches from drain(). It is an Executor, so a continuation
// can name "the loop" as where it runs:
//
//   offload::Notifier loop_side;                      // owns an eventfd
//   watch(loop_side.fd(), [&] { loop_side.drain(); }); // e.g. asyncio's loop.add_reader
//   future.then(loop_side, [](auto f) { deliver(f); });
//
// Wake-up protocol (one syscall per burst, no lost wake):
//   * `armed_` is true from the first add() after a drain until the next drain.
//   * add() pushes under the lock and reads-and-sets `armed_`; only the producer that found it
//     false wakes the consumer (writes the eventfd, or calls the custom wake function), after
//     releasing the lock. Every later producer of the burst adds without a syscall.
//   * drain() first clears the eventfd, then, under the lock, disarms and takes every queued
//     task, then runs them outside the lock. A task added after the disarm finds `armed_` false
//     and wakes again; one added before it is in the batch taken. Either way it runs.
//
// close() refuses further tasks (add() destroys them and fails) and destroys the pending ones:
// the owner calls it when its consumer (a loop) is gone, so that nothing waits on it.

#ifndef OFFLOAD_NOTIFIER_H_
#define OFFLOAD_NOTIFIER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "offload/executor.h"

namespace offload {

class Notifier final : public Executor {
 public:
  struct Stats {
    std::uint64_t added = 0;    // tasks accepted
    std::uint64_t wakes = 0;    // wake-ups issued (eventfd writes or wake calls)
    std::uint64_t drains = 0;   // drain() calls that found work
    std::uint64_t ran = 0;      // tasks run by drain()
  };

  // Wakes the consumer through an eventfd; fd() is what the consumer watches for reading.
  Notifier();
  // Wakes the consumer by calling `wake` (outside any lock, on the producer's thread); for
  // consumers that cannot watch a file descriptor. fd() is -1.
  explicit Notifier(std::function<void()> wake);
  ~Notifier() override;

  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  int fd() const { return fd_; }

  // Queues `task` for the consumer. After close(): FailedPrecondition, task destroyed.
  absl::Status add(Task task) override;

  // Consumer side: runs every task queued so far, in order; returns how many ran.
  std::size_t drain();

  // Refuses further tasks and destroys the queued ones; idempotent.
  void close();
  bool closed() const;

  Stats stats() const;

 private:
  void wake();

  const int fd_;
  const std::function<void()> wake_fn_;

  mutable absl::Mutex mu_;
  std::vector<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace offload

#endif  // OFFLOAD_NOTIFIER_H_
