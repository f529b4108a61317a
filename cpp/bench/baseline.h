// cpp/bench/baseline.h
//
// The baseline that offload's core is benchmarked against (core_bench.cc): a thread pool and a
// blocking queue written the plain way, with std::mutex and std::condition_variable only, as a
// competent engineer would write them without offload. Correct and not handicapped; no tricks
// in either direction.
//
//   baseline::ThreadPool pool(4);
//   pool.submit([] { compress(block); });
//   pool.wait_idle();                           // queue empty and no task running
//
//   baseline::BlockingQueue<int> queue(256);    // or 0 (rendezvous), or kUnbounded
//   std::thread producer([&] {
//     for (int i = 0; i < n; ++i) queue.send(i);
//     queue.close();                            // receivers drain, then recv() is false
//   });
//   for (int item; queue.recv(&item);) consume(item);
//   producer.join();

#ifndef OFFLOAD_BENCH_BASELINE_H_
#define OFFLOAD_BENCH_BASELINE_H_

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace baseline {

// A fixed set of workers fed from one FIFO queue. Each worker takes the lock once per task:
// it finishes the last task's bookkeeping and takes the next task under the same lock.
class ThreadPool {
 public:
  explicit ThreadPool(std::size_t workers) {
    threads_.reserve(workers);
    for (std::size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }

  // Runs what is queued, then joins the workers.
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(std::move(task));
    }
    work_cv_.notify_one();
  }

  // Waits until the queue is empty and no worker is running a task.
  void wait_idle() {
    std::unique_lock<std::mutex> l(mu_);
    idle_cv_.wait(l, [this] { return queue_.empty() && busy_ == 0; });
  }

 private:
  void work() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      work_cv_.wait(l, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
      l.unlock();
      task();
      task = nullptr;  // destroys what it captured, outside the lock
      l.lock();
      --busy_;
      if (busy_ == 0 && queue_.empty()) idle_cv_.notify_all();
    }
  }

  std::mutex mu_;                    // guards queue_, busy_, stopping_
  std::condition_variable work_cv_;  // queue_ not empty, or stopping_
  std::condition_variable idle_cv_;  // queue_ empty and busy_ == 0
  std::deque<std::function<void()>> queue_;
  std::size_t busy_ = 0;  // workers running a task
  bool stopping_ = false;
  std::vector<std::thread> threads_;  // written by the constructor only
};

// A FIFO of at most `capacity` items: send() blocks while it is full, recv() while it is empty.
// Capacity 0 is a rendezvous: send() returns once a receiver has taken the item (it waits in a
// one-item slot meanwhile). kUnbounded never blocks a sender.
template <class T>
class BlockingQueue {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

  explicit BlockingQueue(std::size_t capacity) : capacity_(capacity) {}

  BlockingQueue(const BlockingQueue&) = delete;
  BlockingQueue& operator=(const BlockingQueue&) = delete;

  // False when the queue was closed first (the item was not queued). A rendezvous sender woken
  // by close() before its item was taken returns true: the item stays queued for receivers.
  bool send(T item) {
    const std::size_t slots = std::max<std::size_t>(capacity_, 1);
    std::unique_lock<std::mutex> l(mu_);
    not_full_.wait(l, [&] { return closed_ || items_.size() < slots; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    const std::uint64_t ticket = ++pushed_;
    if (capacity_ != 0) {
      l.unlock();
      not_empty_.notify_one();
      return true;
    }
    not_empty_.notify_one();
    not_full_.wait(l, [&] { return closed_ || taken_ >= ticket; });
    return true;
  }

  // Waits for an item; false once the queue is closed and drained.
  bool recv(T* out) {
    std::unique_lock<std::mutex> l(mu_);
    not_empty_.wait(l, [this] { return closed_ || !items_.empty(); });
    if (items_.empty()) return false;
    *out = std::move(items_.front());
    items_.pop_front();
    ++taken_;
    l.unlock();
    if (capacity_ == 0) {
      // Both the sender of this item and senders waiting for the slot wait on not_full_.
      not_full_.notify_all();
    } else if (capacity_ != kUnbounded) {
      not_full_.notify_one();
    }
    return true;
  }

  // Refuses further sends and wakes every waiter; idempotent.
  void close() {
    {
      std::lock_guard<std::mutex> l(mu_);
      closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  const std::size_t capacity_;
  std::mutex mu_;                     // guards items_, pushed_, taken_, closed_
  std::condition_variable not_full_;  // space in items_; for capacity 0 also "item taken"
  std::condition_variable not_empty_;
  std::deque<T> items_;
  std::uint64_t pushed_ = 0;  // items ever queued
  std::uint64_t taken_ = 0;   // items ever received
  bool closed_ = false;
};

}  // namespace baseline

#endif  // OFFLOAD_BENCH_BASELINE_H_
