// offload/this_task.h
//
// What a running task can ask about itself: whether its cancellation was requested, and how
// to report that it ended without doing its work. Both are thread-local and valid only on the
// thread that runs the task.
//
//   offload::run(pool, [] {
//     for (auto& chunk : chunks) {
//       if (offload::this_task::cancellation_requested()) return;  // stop early
//       process(chunk);
//     }
//   });

#ifndef OFFLOAD_THIS_TASK_H_
#define OFFLOAD_THIS_TASK_H_

#include <atomic>

namespace offload {

// How a task run by a ThreadPool ended; feeds ThreadPool::Stats.
enum class TaskOutcome {
  kCompleted,  // ran to the end (the default when the task returns normally)
  kFailed,     // raised an error; an exception escaping the task counts as this too
  kCancelled,  // did not do its work because it was cancelled before it started
};

namespace this_task {

// True when the task running on this thread has been asked to stop (Future::cancel() was
// called after it started). False outside a task.
bool cancellation_requested();

// Tells the executor running the current task how it ended. No effect outside a task.
void report(TaskOutcome outcome);

// Installs the cancellation flag polled by cancellation_requested() for one scope; nests.
class CancellationScope {
 public:
  explicit CancellationScope(const std::atomic<bool>* flag);
  ~CancellationScope();
  CancellationScope(const CancellationScope&) = delete;
  CancellationScope& operator=(const CancellationScope&) = delete;

 private:
  const std::atomic<bool>* previous_;
};

// Installs the outcome slot written by report() for one scope; used by executors.
class OutcomeScope {
 public:
  explicit OutcomeScope(TaskOutcome* slot);
  ~OutcomeScope();
  OutcomeScope(const OutcomeScope&) = delete;
  OutcomeScope& operator=(const OutcomeScope&) = delete;

 private:
  TaskOutcome* previous_;
};

}  // namespace this_task
}  // namespace offload

#endif  // OFFLOAD_THIS_TASK_H_
