#include "offload/notifier.h"

#include <cxxabi.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace offload {
namespace {

int make_eventfd() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error(std::string("offload: eventfd failed: ") + std::strerror(errno));
  }
  return fd;
}

}  // namespace

Notifier::Notifier() : fd_(make_eventfd()) {}

Notifier::Notifier(std::function<void()> wake) : fd_(-1), wake_fn_(std::move(wake)) {}

Notifier::~Notifier() {
  close();
  if (fd_ >= 0) ::close(fd_);
}

absl::Status Notifier::add(Task task) {
  bool accepted = false;
  bool must_wake = false;
  {
    absl::MutexLock l(&mu_);
    if (!closed_) {
      accepted = true;
      queue_.push_back(std::move(task));
      ++stats_.added;
      must_wake = !armed_;
      armed_ = true;
      if (must_wake) ++stats_.wakes;
    }
  }
  if (!accepted) {  // destroy it outside the lock
    task = nullptr;
    return absl::FailedPreconditionError("offload: add to a closed Notifier");
  }
  if (must_wake) wake();
  return absl::OkStatus();
}

void Notifier::wake() {
  if (wake_fn_) {
    wake_fn_();
    return;
  }
  const std::uint64_t one = 1;
  // EAGAIN means the counter is saturated: the consumer is already woken.
  ssize_t n;
  do {
    n = ::write(fd_, &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
}

std::size_t Notifier::drain() {
  if (fd_ >= 0) {
    std::uint64_t count;
    ssize_t n;
    do {
      n = ::read(fd_, &count, sizeof(count));
    } while (n < 0 && errno == EINTR);
  }
  std::vector<Task> batch;
  {
    absl::MutexLock l(&mu_);
    armed_ = false;
    batch.swap(queue_);
    if (!batch.empty()) {
      ++stats_.drains;
      stats_.ran += batch.size();
    }
  }
  // Every task runs even if one throws; the first exception is rethrown after the batch.
  std::exception_ptr first_error;
  for (Task& task : batch) {
    try {
      std::move(task)();
    } catch (abi::__forced_unwind&) {
      throw;  // pthread_exit unwinds the thread: never swallowed
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
  return batch.size();
}

void Notifier::close() {
  std::vector<Task> dropped;
  {
    absl::MutexLock l(&mu_);
    closed_ = true;
    dropped.swap(queue_);
  }
  // `dropped` is destroyed here, outside the lock.
}

bool Notifier::closed() const {
  absl::MutexLock l(&mu_);
  return closed_;
}

Notifier::Stats Notifier::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

}  // namespace offload
