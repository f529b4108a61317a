#include "offload/this_task.h"

#include "offload/executor.h"

namespace offload {

InlineExecutor& inline_executor() {
  static InlineExecutor* const executor = new InlineExecutor();
  return *executor;
}

namespace this_task {
namespace {
thread_local const std::atomic<bool>* current_flag = nullptr;
thread_local TaskOutcome* current_outcome = nullptr;
}  // namespace

bool cancellation_requested() {
  return current_flag != nullptr && current_flag->load(std::memory_order_acquire);
}

void report(TaskOutcome outcome) {
  if (current_outcome != nullptr) *current_outcome = outcome;
}

CancellationScope::CancellationScope(const std::atomic<bool>* flag) : previous_(current_flag) {
  current_flag = flag;
}
CancellationScope::~CancellationScope() { current_flag = previous_; }

OutcomeScope::OutcomeScope(TaskOutcome* slot) : previous_(current_outcome) {
  current_outcome = slot;
}
OutcomeScope::~OutcomeScope() { current_outcome = previous_; }

}  // namespace this_task
}  // namespace offload
