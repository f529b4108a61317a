// Jobs: the Python calls a pool runs, one kind per place the result goes.
//
//   LoopCall        offload.run / Pool.run   -> an asyncio future, via its loop's Notifier
//   MapCall         Pool.map                 -> one asyncio future holding the ordered list
//   FutureCall      Pool.submit              -> a core Future<Outcome> (offload.Future)
//   ConcurrentCall  Executor.submit          -> a concurrent.futures.Future
//
// Each job is owned by exactly one pool task (JobTask). Run, it does its work under the
// worker's GIL and hands the outcome on; destroyed unrun (shutdown with cancel_pending, or a
// pool that refused it), it is abandoned: its result slot reports cancellation. Either way the
// awaiting side hears back exactly once.
//
// Cancellation before start costs nothing per call: a job checks its destination when it
// starts (asyncio future already done, Promise already cancelled, concurrent future cancelled)
// and skips the call. A running job can be polled through offload.cancelled().

#ifndef OFFLOAD_BINDING_JOBS_H_
#define OFFLOAD_BINDING_JOBS_H_

#include <pybind11/pybind11.h>

#include <atomic>
#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "offload/future.h"
#include "offload/notifier.h"
#include "offload/thread_pool.h"
#include "python_runtime.h"

namespace offload::py {

// What offload.cancelled() asks of the job running on this thread.
class Job {
 public:
  virtual ~Job() = default;
  virtual bool cancel_requested() const = 0;  // GIL held
  // The asyncio future (a Call) its result goes to, for a call awaited on a loop; else null.
  // Borrowed: the job holds it while it runs. offload.from_thread finds the loop through it.
  virtual PyObject* loop_future() const { return nullptr; }
};

// The job running on this thread, or null.
const Job* current_job();

// Adds cancelled() (offload.cancelled) and current_call() (the Call of the job running on
// this thread, for offload.from_thread) to the module.
void bind_jobs(pybind11::module_& m);

// fn(*args, **kwargs) in a context; kwargs and context may be null.
struct Call {
  Ref fn;
  Ref args;
  Ref kwargs;
  Ref context;
};

absl::Status submit_loop_call(ThreadPool& pool, std::shared_ptr<Notifier> notifier,
                              Ref loop_future, Call call);

// `items`: a tuple (the map's own copy).
absl::Status submit_map(ThreadPool& pool, std::shared_ptr<Notifier> notifier, Ref loop_future,
                        Ref fn, Ref items, Ref context);

// On failure the returned future is already cancelled.
absl::Status submit_future_call(ThreadPool& pool, Call call, Future<Outcome>* future);

// `broken` is raised by the pool when its initializer failed; a job that starts after that
// fails its future with concurrent.futures.thread.BrokenThreadPool.
absl::Status submit_concurrent_call(ThreadPool& pool, Ref cf_future, Call call,
                                    std::shared_ptr<const std::atomic<bool>> broken);

}  // namespace offload::py

#endif  // OFFLOAD_BINDING_JOBS_H_
