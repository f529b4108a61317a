// offload/future.h
//
// Future<T> / Promise<T>: a result that is a value, an error (std::exception_ptr) or
// "cancelled", with continuations that always name the executor they run on.
//
//   offload::Future<int> f = offload::run(pool, [] { return parse(text); });
//   offload::Future<std::string> g = f.then(pool, [](offload::Future<int> r) {
//     return std::to_string(r.get());           // r is ready; get() rethrows its error
//   });
//   if (!g.wait_for(absl::Seconds(1))) g.cancel();
//
// States: kPending -> kRunning (Promise::start) -> kValue | kError | kCancelled, or
// kPending -> kCancelled. The first settle wins; later ones return false.
//
// Cancellation: Future::cancel() settles a future that has not started as cancelled (the task
// then skips its work); on a running one it only raises the flag that the task polls through
// this_task::cancellation_requested() or Promise::cancel_requested(). A Promise destroyed
// unsettled (its task was dropped by a shutdown, refused by an executor, or abandoned) settles
// its future as cancelled: nobody waits forever.
//
// Continuations run once the future settles, in the order they were added, each handed to its
// executor outside the future's lock. A continuation refused by its executor is destroyed; its
// own future then reports cancellation.
//
// Future is a cheap, copyable handle; all copies see the same result. Thread-safe.

#ifndef OFFLOAD_FUTURE_H_
#define OFFLOAD_FUTURE_H_

#include <cxxabi.h>

#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "offload/executor.h"
#include "offload/this_task.h"

namespace offload {

enum class FutureStatus { kPending, kRunning, kValue, kError, kCancelled };

// Thrown by Future::get() on a cancelled future.
class CancelledError : public std::runtime_error {
 public:
  CancelledError() : std::runtime_error("offload: the future was cancelled") {}
};

// What a Future<void> stores.
struct Unit {};

template <class T>
class Future;
template <class T>
class Promise;

namespace internal {

template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, Unit, T>;

template <class T>
class FutureState {
 public:
  bool start() {
    absl::MutexLock l(&mu_);
    if (status_ != FutureStatus::kPending) return false;
    status_ = FutureStatus::kRunning;
    return true;
  }

  bool set_value(Stored<T> value) {
    std::vector<Continuation> ready;
    {
      absl::MutexLock l(&mu_);
      if (settled_locked()) return false;
      value_.emplace(std::move(value));
      status_ = FutureStatus::kValue;
      ready.swap(continuations_);
    }
    dispatch(ready);
    return true;
  }

  bool set_error(std::exception_ptr error) {
    return settle(FutureStatus::kError, std::move(error));
  }

  bool set_cancelled() { return settle(FutureStatus::kCancelled, nullptr); }

  // Cancels if not started; raises the cancellation flag otherwise. True when this call
  // settled the future.
  bool cancel() {
    cancel_requested_.store(true, std::memory_order_release);
    std::vector<Continuation> ready;
    {
      // Check and settle under one lock: start() must not slip in between.
      absl::MutexLock l(&mu_);
      if (status_ != FutureStatus::kPending) return false;
      status_ = FutureStatus::kCancelled;
      ready.swap(continuations_);
    }
    dispatch(ready);
    return true;
  }

  FutureStatus status() const {
    absl::MutexLock l(&mu_);
    return status_;
  }

  void wait() const {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(this, &FutureState::settled_locked));
  }

  bool wait_until(absl::Time deadline) const {
    absl::MutexLock l(&mu_);
    return mu_.AwaitWithDeadline(absl::Condition(this, &FutureState::settled_locked), deadline);
  }

  // Requires a settled future.
  const Stored<T>& value() const {
    absl::MutexLock l(&mu_);
    switch (status_) {
      case FutureStatus::kValue:
        return *value_;  // never written again once settled
      case FutureStatus::kError:
        std::rethrow_exception(error_);
      default:
        throw CancelledError();
    }
  }

  std::exception_ptr error() const {
    absl::MutexLock l(&mu_);
    return error_;
  }

  void add_continuation(Executor& executor, Task task) {
    {
      absl::MutexLock l(&mu_);
      if (!settled_locked()) {
        continuations_.push_back(Continuation{&executor, std::move(task)});
        return;
      }
    }
    (void)executor.add(std::move(task));
  }

  const std::atomic<bool>* cancel_flag() const { return &cancel_requested_; }
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_acquire); }

 private:
  struct Continuation {
    Executor* executor;
    Task task;
  };

  bool settled_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return status_ == FutureStatus::kValue || status_ == FutureStatus::kError ||
           status_ == FutureStatus::kCancelled;
  }

  bool settle(FutureStatus status, std::exception_ptr error) {
    std::vector<Continuation> ready;
    {
      absl::MutexLock l(&mu_);
      if (settled_locked()) return false;
      error_ = std::move(error);
      status_ = status;
      ready.swap(continuations_);
    }
    dispatch(ready);
    return true;
  }

  static void dispatch(std::vector<Continuation>& ready) {
    // A refused continuation is destroyed by its executor; nothing else to do here.
    for (Continuation& c : ready) (void)c.executor->add(std::move(c.task));
  }

  mutable absl::Mutex mu_;
  FutureStatus status_ ABSL_GUARDED_BY(mu_) = FutureStatus::kPending;
  std::optional<Stored<T>> value_ ABSL_GUARDED_BY(mu_);
  std::exception_ptr error_ ABSL_GUARDED_BY(mu_);
  std::vector<Continuation> continuations_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> cancel_requested_{false};
};

}  // namespace internal

// A handle that a running task can poll to learn that it should stop. Cheap to copy.
class CancellationToken {
 public:
  CancellationToken() = default;
  explicit CancellationToken(std::shared_ptr<const std::atomic<bool>> flag)
      : flag_(std::move(flag)) {}
  bool requested() const { return flag_ && flag_->load(std::memory_order_acquire); }
  const std::atomic<bool>* flag() const { return flag_.get(); }

 private:
  std::shared_ptr<const std::atomic<bool>> flag_;
};

template <class T>
class Future {
 public:
  using value_type = T;

  Future() = default;

  bool valid() const { return state_ != nullptr; }
  FutureStatus status() const { return state_->status(); }
  bool is_ready() const {
    const FutureStatus s = status();
    return s != FutureStatus::kPending && s != FutureStatus::kRunning;
  }
  bool has_value() const { return status() == FutureStatus::kValue; }
  bool has_error() const { return status() == FutureStatus::kError; }
  bool is_cancelled() const { return status() == FutureStatus::kCancelled; }

  void wait() const { state_->wait(); }
  // True when the future settled within `timeout`.
  bool wait_for(absl::Duration timeout) const { return state_->wait_until(absl::Now() + timeout); }
  bool wait_until(absl::Time deadline) const { return state_->wait_until(deadline); }

  // Waits, then returns the value, rethrows the error, or throws CancelledError.
  template <class U = T>
  std::enable_if_t<!std::is_void_v<U>, const U&> get() const {
    wait();
    return state_->value();
  }
  template <class U = T>
  std::enable_if_t<std::is_void_v<U>> get() const {
    wait();
    state_->value();
  }

  // The stored error; null unless status() is kError.
  std::exception_ptr error() const { return state_->error(); }

  // True when nothing else (the Promise, another Future, a continuation or token holding one)
  // shares this future's state, so this handle alone can reach its value. Once true, it stays
  // true until this handle is copied. (The Python binding lets Python's gc see a result only
  // then.)
  bool is_only_handle() const { return state_.use_count() == 1; }

  // Cancels the task if it has not started (true); otherwise asks it to stop (false).
  bool cancel() const { return state_->cancel(); }

  CancellationToken token() const {
    return CancellationToken(std::shared_ptr<const std::atomic<bool>>(state_, state_->cancel_flag()));
  }

  // Runs fn(Future<T>) on `executor` once this future settles; fn sees it ready. Returns the
  // future of fn's result (an exception thrown by fn becomes its error).
  template <class F, class R = std::invoke_result_t<F, Future<T>>>
  Future<R> then(Executor& executor, F fn) const;

  // For internal use by the binding and combinators: run `task` on `executor` once settled.
  void on_settled(Executor& executor, Task task) const {
    state_->add_continuation(executor, std::move(task));
  }

 private:
  friend class Promise<T>;
  explicit Future(std::shared_ptr<internal::FutureState<T>> state) : state_(std::move(state)) {}

  std::shared_ptr<internal::FutureState<T>> state_;
};

template <class T>
class Promise {
 public:
  Promise() : state_(std::make_shared<internal::FutureState<T>>()) {}
  Promise(Promise&&) noexcept = default;
  Promise& operator=(Promise&& other) noexcept {
    if (this != &other) {
      abandon();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  // An unsettled promise settles its future as cancelled.
  ~Promise() { abandon(); }

  Future<T> get_future() const { return Future<T>(state_); }

  // Moves kPending -> kRunning. False when the future was cancelled: skip the work.
  bool start() { return state_->start(); }

  template <class U = T, class = std::enable_if_t<!std::is_void_v<U>>>
  bool set_value(U value) {
    return state_->set_value(std::move(value));
  }
  template <class U = T, class = std::enable_if_t<std::is_void_v<U>>>
  bool set_value() {
    return state_->set_value(Unit{});
  }
  bool set_error(std::exception_ptr error) { return state_->set_error(std::move(error)); }
  bool set_cancelled() { return state_->set_cancelled(); }

  bool cancel_requested() const { return state_->cancel_requested(); }
  const std::atomic<bool>* cancel_flag() const { return state_->cancel_flag(); }

 private:
  void abandon() {
    if (state_) state_->set_cancelled();
  }

  std::shared_ptr<internal::FutureState<T>> state_;
};

namespace internal {

// Runs fn() for `promise`: skips it when already cancelled, stores its value or error, and
// tells the executor how the task ended.
template <class T, class F>
void fulfil(Promise<T>& promise, F& fn) {
  if (!promise.start()) {
    this_task::report(TaskOutcome::kCancelled);
    return;
  }
  this_task::CancellationScope scope(promise.cancel_flag());
  try {
    if constexpr (std::is_void_v<T>) {
      std::move(fn)();
      promise.set_value();
    } else {
      promise.set_value(std::move(fn)());
    }
  } catch (abi::__forced_unwind&) {
    throw;  // pthread_exit unwinds the thread: never swallowed
  } catch (...) {
    promise.set_error(std::current_exception());
    this_task::report(TaskOutcome::kFailed);
  }
}

}  // namespace internal

// Runs fn() on `executor`; its result, error or cancellation comes back in the future.
template <class F, class R = std::invoke_result_t<F>>
Future<R> run(Executor& executor, F fn) {
  Promise<R> promise;
  Future<R> future = promise.get_future();
  (void)executor.add([promise = std::move(promise), fn = std::move(fn)]() mutable {
    internal::fulfil(promise, fn);
  });
  return future;
}

template <class T>
template <class F, class R>
Future<R> Future<T>::then(Executor& executor, F fn) const {
  Promise<R> promise;
  Future<R> next = promise.get_future();
  Future<T> self = *this;
  on_settled(executor, [promise = std::move(promise), fn = std::move(fn), self]() mutable {
    auto call = [&]() -> R { return std::move(fn)(self); };
    internal::fulfil(promise, call);
  });
  return next;
}

// Settles once every input has settled, with the inputs themselves (each ready), in order.
template <class T>
Future<std::vector<Future<T>>> when_all(std::vector<Future<T>> futures) {
  struct Shared {
    explicit Shared(std::vector<Future<T>> f) : futures(std::move(f)), left(futures.size()) {}
    std::vector<Future<T>> futures;
    std::atomic<std::size_t> left;
    Promise<std::vector<Future<T>>> promise;
  };
  auto shared = std::make_shared<Shared>(std::move(futures));
  Future<std::vector<Future<T>>> result = shared->promise.get_future();
  if (shared->futures.empty()) {
    shared->promise.set_value({});
    return result;
  }
  for (const Future<T>& f : shared->futures) {
    f.on_settled(inline_executor(), [shared] {
      if (shared->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        shared->promise.set_value(shared->futures);
      }
    });
  }
  return result;
}

template <class T>
struct WhenAnyResult {
  std::size_t index;                 // the first input to settle
  std::vector<Future<T>> futures;    // all inputs, in order
};

// Settles as soon as one input settles. Throws std::invalid_argument on an empty input.
template <class T>
Future<WhenAnyResult<T>> when_any(std::vector<Future<T>> futures) {
  if (futures.empty()) throw std::invalid_argument("offload::when_any: no futures");
  struct Shared {
    explicit Shared(std::vector<Future<T>> f) : futures(std::move(f)) {}
    std::vector<Future<T>> futures;
    std::atomic<bool> won{false};
    Promise<WhenAnyResult<T>> promise;
  };
  auto shared = std::make_shared<Shared>(std::move(futures));
  Future<WhenAnyResult<T>> result = shared->promise.get_future();
  for (std::size_t i = 0; i < shared->futures.size(); ++i) {
    shared->futures[i].on_settled(inline_executor(), [shared, i] {
      if (!shared->won.exchange(true, std::memory_order_acq_rel)) {
        shared->promise.set_value(WhenAnyResult<T>{i, shared->futures});
      }
    });
  }
  return result;
}

}  // namespace offload

#endif  // OFFLOAD_FUTURE_H_
