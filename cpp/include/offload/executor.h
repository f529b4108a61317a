// offload/executor.h
//
// Executor: the one interface for "run this task somewhere". ThreadPool, Notifier (a loop's
// completion queue) and InlineExecutor implement it, so that a continuation always names where
// it runs:
//
//   offload::Future<int> f = offload::run(pool, [] { return 6 * 7; });
//   f.then(offload::inline_executor(), [](offload::Future<int> r) { log(r.get()); });
//
// Refusal contract: an executor that cannot accept a task (it was shut down or closed) returns
// a non-OK status and destroys the task without running it. A task that owns a Promise thereby
// settles it as cancelled, so no result is ever silently lost.

#ifndef OFFLOAD_EXECUTOR_H_
#define OFFLOAD_EXECUTOR_H_

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace offload {

// A unit of work: called at most once, then destroyed. Destroyed without a call when refused
// or cancelled.
using Task = absl::AnyInvocable<void() &&>;

class Executor {
 public:
  virtual ~Executor() = default;

  // Schedules `task` to run once. On failure the task has been destroyed, not run.
  virtual absl::Status add(Task task) = 0;
};

// Runs each task immediately on the calling thread. Use it for continuations that only move a
// value along (set a promise, push to a notifier) and never block.
class InlineExecutor final : public Executor {
 public:
  absl::Status add(Task task) override {
    std::move(task)();
    return absl::OkStatus();
  }
};

// The process-wide InlineExecutor.
InlineExecutor& inline_executor();

}  // namespace offload

#endif  // OFFLOAD_EXECUTOR_H_
