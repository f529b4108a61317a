#include "channel_ops.h"

#include <optional>
#include <utility>

#include "checks.h"
#include "package.h"

namespace pyb = pybind11;

namespace offload::py {

void set_channel_closed() {
  PyErr_SetString(package().channel_closed, "offload: the channel is closed");
}

void raise_channel_closed() {
  set_channel_closed();
  throw pyb::error_already_set();
}

void raise_timeout(const char* what) {
  PyErr_Format(PyExc_TimeoutError, "offload: %s timed out", what);
  throw pyb::error_already_set();
}

pyb::object take_item(CoreOp& op) {
  if (!op.item || !*op.item) return pyb::none();
  pyb::object item = pyb::reinterpret_steal<pyb::object>(op.item->release());
  op.item.reset();
  return item;
}

void give_back_received(CoreOp& op) {
  if (op.is_send || op.closed || !op.item) return;
  op.channel->give_back(std::move(*op.item));
  op.item.reset();
}

int wait_blocking(CoreOp* ops, int n, const pyb::handle& timeout) {
  const std::optional<double> seconds = checked_timeout(timeout);
  WaitEnd end = WaitEnd::kReady;
  const int done = CoreSelect::wait(
      ops, n, deadline_after(seconds ? &*seconds : nullptr),
      [&](internal::ThreadWaiter& waiter, absl::Time deadline) {
        end = wait_without_gil([&](absl::Time t) { return waiter.wait_until(t); }, deadline);
        return end == WaitEnd::kReady;
      },
      [](internal::ThreadWaiter& waiter) {
        Py_BEGIN_ALLOW_THREADS
        waiter.wait();  // the claimer may need the GIL to reach its wake-up
        Py_END_ALLOW_THREADS
      });
  if (end == WaitEnd::kSignal) {
    if (done >= 0) give_back_received(ops[done]);
    throw pyb::error_already_set();
  }
  return done;
}

std::vector<CoreOp> core_ops(const std::vector<std::shared_ptr<CoreChannel>>& channels,
                         std::vector<Ref>& items) {
  std::vector<CoreOp> ops(channels.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    ops[i].channel = channels[i].get();
    if (items[i].get() != package().channel_recv) {
      ops[i].is_send = true;
      ops[i].item.emplace(std::move(items[i]));
    }
  }
  return ops;
}

}  // namespace offload::py
